#!/usr/bin/env bash
# The test suite: set up if needed, then pytest (real ImageMagick, Pedalboard, Parquet, models).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
