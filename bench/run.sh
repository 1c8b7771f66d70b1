#!/usr/bin/env bash
# Benchmark `labdock acquire` against its peers; see bench/README.md.
#
# Usage: bench/run.sh [--smoke] [harness options...]
#   (no option)  install the contenders under bench/work/ and run the full
#                benchmark (14.7 minutes on 2 cores for the recorded
#                results), writing bench/results/
#   --smoke      tiny run of labdock, the floor loop and mosquitto_sub on
#                InfluxDB only, with the project's .venv and no contender
#                to install. Pass --out DIR to keep bench/results/ as it is.
#   -h, --help   print this usage and the harness options, install nothing
# Other options go to bench/harness.py (--only, --databases, --modes,
# --profile, --rounds, --busy-retry, --out, --work); --help lists them.
set -euo pipefail

usage() {
    sed -n '4,13s/^# \{0,1\}//p' "$0"
}

cd "$(dirname "$0")/.."
repo=$(pwd)
work=$repo/bench/work
command_line="bench/run.sh${*:+ $*}"

# Versions of the peers, pinned so that reruns compare the same programs.
# Node-RED 5 needs Node.js 22.9 or later, and Debian's and this machine's
# Node.js is 20, so the last 4.x release is measured.
NODE_RED_VERSION=4.1.15
CONTRIB_INFLUXDB_VERSION=0.7.0
MQTT2INFLUXDB_VERSION=1.5.2

smoke=false
for argument in "$@"; do
    case $argument in
        --smoke) smoke=true ;;
        # Handled before any install, so that asking for help never
        # creates bench/work/ or downloads the contenders.
        -h | --help)
            usage
            echo
            exec "${BENCH_PYTHON:-$repo/.venv/bin/python}" bench/harness.py --help
            ;;
    esac
done

bash scripts/install-deps.sh test

if $smoke; then
    python=${BENCH_PYTHON:-$repo/.venv/bin/python}
    exec "$python" bench/harness.py --command "$command_line" "$@"
fi

mkdir -p "$work"

# The bench venv: labdock (editable, so it runs the checked-out source), the
# plot and the profiler.
if [[ ! -e $work/venv/.installed ]]; then
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet --upgrade pip
    "$work/venv/bin/pip" install --quiet -e "$repo" matplotlib py-spy pytest
    touch "$work/venv/.installed"
fi

# mqtt2influxdb 1.x creates its client with paho-mqtt 1.x's API, which
# paho-mqtt 2 rejects, so its venv pins paho-mqtt below 2.
if [[ ! -e $work/mqtt2influxdb/.installed-$MQTT2INFLUXDB_VERSION ]]; then
    rm -rf "$work/mqtt2influxdb"
    python3 -m venv "$work/mqtt2influxdb"
    "$work/mqtt2influxdb/bin/pip" install --quiet \
        "mqtt2influxdb==$MQTT2INFLUXDB_VERSION" "paho-mqtt<2"
    touch "$work/mqtt2influxdb/.installed-$MQTT2INFLUXDB_VERSION"
fi

stamp=$work/nodered/.installed-$NODE_RED_VERSION-$CONTRIB_INFLUXDB_VERSION
if [[ ! -e $stamp ]]; then
    if ! command -v npm >/dev/null; then
        echo "npm not found: install Node.js 18 or later (Debian: apt-get install nodejs npm)" >&2
        exit 1
    fi
    rm -rf "$work/nodered"
    mkdir -p "$work/nodered"
    (cd "$work/nodered" && npm init -y >/dev/null &&
        npm install --no-audit --no-fund --loglevel=error \
            "node-red@$NODE_RED_VERSION" "node-red-contrib-influxdb@$CONTRIB_INFLUXDB_VERSION")
    touch "$stamp"
fi

exec "$work/venv/bin/python" bench/harness.py \
    --node-red "$work/nodered" \
    --mqtt2influxdb "$work/mqtt2influxdb/bin/mqtt2influxdb" \
    --command "$command_line" "$@"
