#!/usr/bin/env bash
# The whole pipeline on the bundled sample videos, offline, with the standard protocol:
#   set up -> extract 3D skeletons (MediaPipe) -> train SimMC on the training people
#   (001-010) -> score the new test people (075-080), Bags vs Normal, next to raw joints.
#   Then re-identifies two new people's clips (075 with a bag, 078 in a coat) against the test
#   people's Normal walks: the 5 nearest walks each, and a page of them.
# Outputs: skeletons-samples/ (store), runs/quickstart/ (model, log), runs/quickstart/eval.json,
# runs/quickstart/report/index.html (table, CMC curve, feature map, training curves),
# runs/quickstart/match/index.html (the ranked walks as frame strips).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
V=.venv/bin/vid2reid
STORE=${STORE:-skeletons-samples}
# MediaPipe pinned so the quickstart is the same on every machine, online or not
# (the default backend would use MMPose where its weights can be downloaded).
$V extract sample_videos --out "$STORE" --backend mediapipe
$V train --data "$STORE" --out runs/quickstart --seed 0
# The trained model and raw joint coordinates side by side, and what that means.
$V eval --run runs/quickstart --data "$STORE" --probe Bags --gallery Normal \
  --json runs/quickstart/eval.json --report runs/quickstart/report
# Ends with the top 5 gallery walks for two query videos (extracted into runs/quickstart/match-cache).
$V match sample_videos/075-bg-01-090.avi sample_videos/078-cl-01-090.avi --gallery "$STORE" \
  --gallery-split test --gallery-condition nm --run runs/quickstart --top 5 \
  --cache runs/quickstart/match-cache --report runs/quickstart/match --videos sample_videos
