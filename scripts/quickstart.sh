#!/usr/bin/env bash
# The whole pipeline on the bundled sample videos, offline, with the standard protocol:
#   set up -> extract 3D skeletons (MediaPipe) -> train SimMC on the training people
#   (001-010) -> score the new test people (075-080), Bags vs Normal, next to raw joints.
# Outputs: skeletons-samples/ (store), runs/quickstart/ (model, log), runs/quickstart/eval.json,
# runs/quickstart/report/index.html (table, CMC curve, feature map, training curves).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
V=.venv/bin/vid2reid
STORE=${STORE:-skeletons-samples}
# MediaPipe pinned so the quickstart is the same on every machine, online or not
# (the default backend would use MMPose where its weights can be downloaded).
$V extract sample_videos --out "$STORE" --backend mediapipe
$V train --data "$STORE" --out runs/quickstart --seed 0
# Ends with the trained model and raw joint coordinates side by side, and what that means.
$V eval --run runs/quickstart --data "$STORE" --probe Bags --gallery Normal \
  --json runs/quickstart/eval.json --report runs/quickstart/report
