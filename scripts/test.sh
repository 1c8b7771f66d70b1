#!/usr/bin/env bash
# Run the test suite: install the real components it starts, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh test
exec .venv/bin/python -m pytest "$@"
