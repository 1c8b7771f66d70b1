#!/usr/bin/env bash
# Make sure a Python 3.11+ with venv exists; on Debian, install it as root.
set -euo pipefail
python="${1:-python3}"
if "$python" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3 python3-venv python3-pip >/dev/null
    exit 0
fi
echo "labdock needs Python 3.11 or newer with the venv module ($python has none);" \
     "on Debian run: sudo apt-get install python3-venv" >&2
exit 1
