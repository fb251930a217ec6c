#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install ego4d-lta with the tested versions of constraints.txt.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; assert sys.version_info >= (3, 11), f"ego4d-lta needs Python >= 3.11, found {sys.version.split()[0]}"'
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip_install() {
  # pip, never uv/poetry: only pip picks up the torch wheels some machines keep on local disk.
  local log status=0
  log=$(mktemp)
  # --no-compile: byte-compiling torch's thousands of modules at install time costs minutes on slow disks.
  .venv/bin/pip install -q --no-compile -c constraints.txt "$@" >"$log" 2>&1 || status=$?
  grep -v "is ignored: it is neither a file nor a directory" "$log" || true
  rm -f "$log"
  return "$status"
}
# torch/torchvision first, pinned exactly (an open range would pull a multi-GB CUDA build).
pip_install torch torchvision
pip_install -e '.[dev]'
.venv/bin/python -c 'import torch, ego4d_lta; print(f"ego4d-lta {ego4d_lta.__version__} installed in .venv (torch {torch.__version__})")'
