#!/usr/bin/env bash
# The main job: set up if needed, then the demo on media the project generates itself: an image
# effect, an audio chain, and a transfer of the image edit onto the music with the shipped model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/deltav2a demo --output outputs "$@"
