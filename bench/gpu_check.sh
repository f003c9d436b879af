#!/usr/bin/env bash
# Issue 10's GPU measurements in one go (one CUDA GPU, under 8 minutes); prints one Markdown
# table to stdout (progress on stderr). Extra arguments go to bench/gpu_check.py, e.g.
#   bash bench/gpu_check.sh --no-compile
#   bash bench/gpu_check.sh --device cpu --tiny      # dry run on CPU
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
nvidia-smi -L 2>/dev/null || true
# 8 minutes on the GPU; a CPU dry run on a busy machine may need GPU_CHECK_TIMEOUT=3000.
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PY" bench/gpu_check.py "$@"
