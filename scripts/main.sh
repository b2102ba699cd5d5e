#!/usr/bin/env bash
# The main job: set up if needed, then run the demo on media the project generates itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/deltav2a demo --output outputs "$@"
