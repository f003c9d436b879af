#!/usr/bin/env bash
# Create or refresh .venv at the repository root, idempotently.
# A re-run with requirements.txt, setup.py and this script unchanged only checks a stamp file.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
STAMP="$VENV/.nasnet_det_stamp"
want=$(cat requirements.txt setup.py scripts/bootstrap.sh | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "[bootstrap] setting up $VENV (first run takes several minutes)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q -r requirements.txt
# Detectron2: leave a working install alone (a user's own build); otherwise use the
# sal-detectron2 wheel (upstream detectron2 repackaged as a cp310 wheel whose only
# Python-specific file is the optional compiled _C extension).
if "$VPY" -c "import detectron2" >/dev/null 2>&1; then
  echo "[bootstrap] detectron2 already importable: left alone"
else
  tmp=$(mktemp -d)
  "$VPY" -m pip download -q --no-deps --python-version 3.10 --only-binary :all: \
    -d "$tmp" sal-detectron2==0.7.2
  whl=$(ls "$tmp"/sal_detectron2-0.7.2-*.whl)
  cp "$whl" "$tmp/sal_detectron2-0.7.2-py3-none-any.whl"
  "$VPY" -m pip install -q "$tmp/sal_detectron2-0.7.2-py3-none-any.whl" \
    fvcore 'iopath<0.1.10' 'setuptools<81' 'numpy<2'
  rm -rf "$tmp"
fi
"$VPY" -m pip install -q --no-build-isolation --no-deps -e .
"$VPY" -c "import torch, torchvision, detectron2, timm, pycocotools, nasnet_det" \
  || { echo "[bootstrap] import check failed" >&2; exit 1; }
echo "$want" >"$STAMP"
echo "[bootstrap] ready: $VENV"
