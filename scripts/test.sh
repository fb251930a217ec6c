#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/ruff check ego4d_lta tests benchmarks
.venv/bin/python -m pytest "$@"
