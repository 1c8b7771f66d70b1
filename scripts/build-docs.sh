#!/usr/bin/env bash
# Build the documentation site into site/ (or the directory given).
#
# usage: scripts/build-docs.sh [SITE_DIR]
#
# The reference pages (CLI, acquisition configuration, stack policy and
# secrets) are generated from the code by docs/hooks/reference.py. MkDocs
# runs that hook before every build; it also runs first here, so that its
# errors show on their own. The build is strict: a broken link, a missing
# snippet file or a page left out of the nav fails it.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-.venv/bin/python}"
site_dir="${1:-site}"

if ! "$python" -c 'import material, mkdocs' 2>/dev/null; then
    echo "mkdocs-material is not installed for $python; run: make venv" >&2
    exit 2
fi

"$python" docs/hooks/reference.py
NO_MKDOCS_2_WARNING=1 exec "$python" -m mkdocs build --strict --site-dir "$site_dir"
