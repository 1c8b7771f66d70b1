#!/usr/bin/env bash
# Install the Debian packages a target needs, when missing (as root).
set -euo pipefail
target="${1:-test}"
packages=(mosquitto mosquitto-clients influxdb victoria-metrics)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "missing Debian packages for $target: ${missing[*]}; install them as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
