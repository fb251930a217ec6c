#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
# Let the test processes cache the bytecode of what they import (the project, the tests) like a user's would.
unset PYTHONDONTWRITEBYTECODE
.venv/bin/ruff check ego4d_lta tests benchmarks
# One pytest-xdist worker per core (EGO4D_LTA_TEST_WORKERS overrides). --dist loadfile: the tests on the demo's
# run (tests/test_train.py) share one worker and one demo (xdist_group does not group under pytest 9: checked).
# --durations: where the time went, in every CI log.
.venv/bin/python -m pytest -n "${EGO4D_LTA_TEST_WORKERS:-auto}" --dist loadfile --durations=25 "$@"
