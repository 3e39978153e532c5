#!/usr/bin/env bash
# Sets up vid2reid in a virtual environment (.venv by default): torch (CPU build
# unless one is already installed), the MMPose stack, the MediaPipe extra and
# vid2reid itself. Safe to re-run; it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install 'pip>=23' 'setuptools<81' wheel
# torch first: a bare requirement would pull a multi-GB CUDA build. TORCH_SPEC
# lets GPU users pick their own build (e.g. TORCH_SPEC='torch==2.6.0'; 2.6 or newer).
if ! "$VENV/bin/python" -c 'import torch' 2>/dev/null; then
  echo "[setup] installing ${TORCH_SPEC:-torch==2.13.0} (CPU build where it is available)"
  pip install "${TORCH_SPEC:-torch==2.13.0}" || pip install 'torch>=2.6' --index-url https://download.pytorch.org/whl/cpu
fi
echo "[setup] installing vid2reid with the pose stack"
pip install -e '.[pose,mediapipe-lean,report,test,export]'
# mmpose's declared requirements include chumpy, which does not build and which
# mmpose 1.3.2 never imports: install it without deps (its real needs come
# from vid2reid's [pose] extra).
pip install --no-deps 'mmpose==1.3.2'
# MediaPipe 0.10.21 ships BlazePose weights in its wheel; its declared deps pull
# jax and more that pose estimation does not use ([mediapipe-lean] is what it imports).
pip install --no-deps 'mediapipe==0.10.21'
"$VENV/bin/python" -m vid2reid.pose.check_install || true
echo "[setup] done: activate with 'source $VENV/bin/activate'"
