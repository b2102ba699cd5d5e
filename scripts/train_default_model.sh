#!/usr/bin/env bash
# Rebuild the shipped default model (core/models/default) from ../shared/data:
# perceptual encoders (lexicon v4, audio normalisation 4; decision 16.64), the k-NN controller
# (best on held-out transfer quality; MLP and AR are trained beside it for the report), tuned
# thresholds, strength maps, calibration. Deterministic for the config's seed on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/deltav2a run configs/default.yaml -o runs/default "$@"
mkdir -p core/models/default
# the run folder is a stage cache: metrics.json names the latest setup's models
model="runs/default/$(.venv/bin/python -c 'import json; print(json.load(open("runs/default/metrics.json"))["models"]["knn"])')"
for f in controller.safetensors controller.json config.yaml; do
  cp "$model/$f" "core/models/default/$f"
done
cp runs/default/report.md core/models/default/REPORT.md
echo "updated core/models/default from runs/default"
