#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install ego4d-lta with the tested versions of constraints.txt.
# Idempotent: a second run with the same constraints.txt and pyproject.toml only checks the import.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; assert sys.version_info >= (3, 11), f"ego4d-lta needs Python >= 3.11, found {sys.version.split()[0]}"'
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# How long each step took, printed at the end and kept in .venv/.ego4d-lta-setup-times (scripts/test.sh repeats it).
times=""
rm -f .venv/.ego4d-lta-setup-times
# Each step says when it starts and how long it took as it goes: the first run is minutes of silent pip otherwise.
begin() { echo "[setup] $1 ..."; }
step() {
  local took=$((SECONDS - ${step_start:-0}))
  times+="$1 $took s, "
  echo "[setup] $1: done in $took s"
  step_start=$SECONDS
}
pip_install() {
  # pip, never uv/poetry: only pip picks up the torch wheels some machines keep on local disk.
  local log status=0
  log=$(mktemp)
  .venv/bin/pip install -q --no-compile -c constraints.txt "$@" >"$log" 2>&1 || status=$?
  grep -v "is ignored: it is neither a file nor a directory" "$log" || true
  rm -f "$log"
  return "$status"
}
# What `ego4d-lta` and its tests import (torch, open_clip, pytorchvideo, submitit, torchrun, matplotlib, ...).
WARM_IMPORTS="import ego4d_lta.cli, ego4d_lta.workflow.demo, ego4d_lta.stages.extract, ego4d_lta.stages.resize, ego4d_lta.stages.train, \
ego4d_lta.stages.predict, ego4d_lta.workflow.launch, ego4d_lta.workflow.ensemble, ego4d_lta.workflow.report, ego4d_lta.workflow.upload, ego4d_lta.challenge.validate, \
open_clip, pytorchvideo, submitit, torch.distributed.run, matplotlib.pyplot, pytest, xdist, hypothesis"
warm_up() {  # warm_up PYTHON CODE: import once with .pyc writing on; a failure only warns (the check below imports)
  env -u PYTHONDONTWRITEBYTECODE HF_HUB_OFFLINE=1 "$1" -c "$2" >/dev/null 2>&1 || echo "warning: $1 -c '$2' failed" >&2
}
stamp=.venv/.ego4d-lta-installed
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # torch/torchvision first, pinned exactly (an open range would pull a multi-GB CUDA build).
  begin "torch and torchvision (the largest download: minutes on a first run)"
  pip_install torch torchvision
  step torch
  begin "the other packages of constraints.txt, and ego4d-lta itself"
  pip_install -e '.[dev]'
  step packages
  # Byte-compile once what the commands import. Where PYTHONDONTWRITEBYTECODE is set (as on some CI images)
  # nothing else ever writes .pyc files, and every `import torch` then compiles its modules from source:
  # measured 265 s instead of 63 s per process on a 2-core machine. One importing process compiles just those
  # (compileall over all ~10,000 files of site-packages: ~0.12 s of CPU per file there, ~20 min in all).
  begin "byte-compiling what the commands import (once)"
  warm_up .venv/bin/python "$WARM_IMPORTS"
  echo "$want" >"$stamp"
  step byte-compile
fi
# The EvalAI client (`ego4d-lta upload`) pins click 6.7 and requests 2.25, which conflict with this environment:
# it gets one of its own, .venv/evalai/, where `ego4d-lta upload` finds it. EGO4D_LTA_NO_EVALAI=1 skips it.
if [ -z "${EGO4D_LTA_NO_EVALAI:-}" ] && [ ! -x .venv/evalai/bin/evalai ]; then
  begin "the EvalAI client, in .venv/evalai/"
  rm -rf .venv/evalai
  "$(.venv/bin/python -c 'import sys, os; print(os.path.join(sys.base_prefix, "bin", "python3"))')" -m venv .venv/evalai
  log=$(mktemp)
  if .venv/evalai/bin/pip install -q -r scripts/evalai-requirements.txt >"$log" 2>&1 &&
    .venv/evalai/bin/pip install -q --no-deps evalai==1.3.18 >>"$log" 2>&1; then
    warm_up .venv/evalai/bin/python "import evalai.main"
  else
    echo "warning: the EvalAI client did not install (ego4d-lta upload needs it):" >&2; tail -n 5 "$log" >&2
    rm -rf .venv/evalai
  fi
  rm -f "$log"
  step evalai
fi
# `evalai set_token TOKEN`, as upload's messages say, wherever .venv/bin is on PATH (the client keeps its own env).
if [ -x .venv/evalai/bin/evalai ] && [ ! -e .venv/bin/evalai ]; then
  ln -s ../evalai/bin/evalai .venv/bin/evalai
fi
.venv/bin/python -c 'import torch, ego4d_lta; print(f"ego4d-lta {ego4d_lta.__version__} installed in .venv (torch {torch.__version__})")'
step check
echo "set-up: ${times%, }" | tee .venv/.ego4d-lta-setup-times
