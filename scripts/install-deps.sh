#!/usr/bin/env bash
# Install the Debian packages that a target of this repository needs, when missing.
#
# Usage: scripts/install-deps.sh [TARGET]
#   test   the servers that the test fixtures start (the default)
#
# When every package is installed, exits 0 without running apt. Otherwise,
# as root, installs the missing ones with apt-get, refreshing the package
# lists only if the first install attempt fails. As any other user, prints
# the missing packages and exits 1.
set -euo pipefail

usage() {
    sed -n '2,10s/^# \{0,1\}//p' "$0"
}

target="${1:-test}"
case "$target" in
    test)
        # openssl creates the CA and certificate of the TLS broker fixture.
        packages=(mosquitto mosquitto-clients influxdb victoria-metrics openssl)
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "unknown target '$target'" >&2
        usage >&2
        exit 2
        ;;
esac

if ! command -v dpkg-query >/dev/null; then
    echo "dpkg-query not found. This script needs Debian or a Debian-based system." >&2
    exit 1
fi

missing=()
for package in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$package")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi

echo "missing Debian packages for target '$target': ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
    echo "install them as root: sudo $0 $target" >&2
    exit 1
fi

# Unless a policy-rc.d forbids it, the Debian packages start system services:
# mosquitto on port 1883 and influxd on port 8086 of all interfaces. The tests
# start their own servers, so a temporary policy-rc.d that exits 101 keeps
# those services from starting. An existing policy-rc.d is left as it is.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi

export DEBIAN_FRONTEND=noninteractive
install_missing() {
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
if ! install_missing; then
    echo "apt-get install failed, so refreshing the package lists and retrying" >&2
    apt-get update -qq
    install_missing
fi
