#!/usr/bin/env bash
# The whole pipeline on the bundled sample videos, offline:
#   set up -> extract 3D skeletons (MediaPipe) -> train SimMC -> eval Bags vs Normal.
# Outputs: skeletons-samples/ (store), runs/quickstart/ (model), runs/quickstart/eval.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
V=.venv/bin/vid2reid
STORE=${STORE:-skeletons-samples}
$V extract sample_videos --out "$STORE" --backend mediapipe
# The samples hold only a few people, so train and test share them: protocol
# 'all' (non-standard, transductive: training still sees no labels).
$V train --data "$STORE" --out runs/quickstart --preset casia-b --protocol all --seed 0
$V eval --run runs/quickstart --data "$STORE" --protocol all --probe Bags --gallery Normal \
  --json runs/quickstart/eval.json
# The same protocol on raw root-relative joints, for comparison (the paper's Baseline row).
$V eval --baseline raw --data "$STORE" --protocol all --probe Bags --gallery Normal
