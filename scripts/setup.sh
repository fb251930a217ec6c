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
pip_install() {
  # pip, never uv/poetry: only pip picks up the torch wheels some machines keep on local disk.
  local log status=0
  log=$(mktemp)
  .venv/bin/pip install -q --no-compile -c constraints.txt "$@" >"$log" 2>&1 || status=$?
  grep -v "is ignored: it is neither a file nor a directory" "$log" || true
  rm -f "$log"
  return "$status"
}
stamp=.venv/.ego4d-lta-installed
want=$(cat constraints.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  # torch/torchvision first, pinned exactly (an open range would pull a multi-GB CUDA build).
  pip_install torch torchvision
  pip_install -e '.[dev]'
  # Byte-compile once, in parallel. Where PYTHONDONTWRITEBYTECODE is set (as on some CI images) nothing
  # else ever writes .pyc files, and every `import torch` then compiles ~2,300 modules from source:
  # measured 265 s instead of 63 s per process on a 2-core machine.
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  .venv/bin/python -m compileall -q -j 0 "$site" ego4d_lta >/dev/null 2>&1 || true
  echo "$want" >"$stamp"
fi
# The EvalAI client (`ego4d-lta upload`) pins click 6.7 and requests 2.25, which conflict with this environment:
# it gets one of its own, .venv/evalai/, where `ego4d-lta upload` finds it. EGO4D_LTA_NO_EVALAI=1 skips it.
if [ -z "${EGO4D_LTA_NO_EVALAI:-}" ] && [ ! -x .venv/evalai/bin/evalai ]; then
  rm -rf .venv/evalai
  "$(.venv/bin/python -c 'import sys, os; print(os.path.join(sys.base_prefix, "bin", "python3"))')" -m venv .venv/evalai
  log=$(mktemp)
  if .venv/evalai/bin/pip install -q -r scripts/evalai-requirements.txt >"$log" 2>&1 &&
    .venv/evalai/bin/pip install -q --no-deps evalai==1.3.18 >>"$log" 2>&1; then
    .venv/evalai/bin/python -m compileall -q -j 0 .venv/evalai/lib >/dev/null 2>&1 || true
  else
    echo "warning: the EvalAI client did not install (ego4d-lta upload needs it):" >&2; tail -n 5 "$log" >&2
    rm -rf .venv/evalai
  fi
  rm -f "$log"
fi
.venv/bin/python -c 'import torch, ego4d_lta; print(f"ego4d-lta {ego4d_lta.__version__} installed in .venv (torch {torch.__version__})")'
