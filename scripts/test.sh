#!/usr/bin/env bash
# Install (scripts/setup.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Where the time went, printed last (a CI log often keeps only its tail): set-up, lint, tests.
phases=""
phase() { phases+="$1 $((SECONDS - ${phase_start:-0})) s, "; phase_start=$SECONDS; }
summary() {
  cat .venv/.ego4d-lta-setup-times 2>/dev/null || true
  echo "test.sh: ${phases}then $((SECONDS - ${phase_start:-0})) s to the end (${SECONDS} s in all)"
}
trap summary EXIT
bash scripts/setup.sh
phase set-up
export HF_HUB_OFFLINE=1
# Each test's line as it ends, even when a CI runner kills the run (a block-buffered log would lose it all).
export PYTHONUNBUFFERED=1
# Let the test processes cache the bytecode of what they import (the project, the tests) like a user's would.
unset PYTHONDONTWRITEBYTECODE
.venv/bin/ruff check ego4d_lta tests benchmarks scripts
phase ruff
# The Slurm tests (tests/test_slurm.py) run on a real local cluster: as root, this brings one up in the background
# while the other tests start (the tests wait for it) and takes it down at the end; a cluster that is already up
# is used as it is. Without root they are deselected, and this says so. The cluster brought up here is this run's
# own (its name, state directory, ports and config: SLURM_LOCAL_NAME): another test run's, or one the user brought
# up, runs beside it, and this run's `down` stops only its own daemons.
select=()
if scontrol ping 2>/dev/null | grep -q 'is UP'; then
  echo "Slurm tests: on the running cluster ($(sinfo -h -o '%D nodes %N' | head -1))"
elif [ "$(id -u)" -eq 0 ]; then
  status_dir=$(mktemp -d)
  export EGO4D_LTA_SLURM_STATUS=$status_dir/cluster.status
  export SLURM_LOCAL_NAME=test$$ SLURM_LOCAL_DIR=$status_dir/slurm
  export EGO4D_LTA_SLURM_CONF=$SLURM_LOCAL_DIR/etc/slurm.conf   # the Slurm tests point SLURM_CONF at it
  ( if SLURM_LOCAL_GPUS=2 bash slurm/local_cluster.sh up > "$status_dir/cluster.log" 2>&1; then code=0; else code=$?; fi
    echo "$code" > "$EGO4D_LTA_SLURM_STATUS" ) &
  cluster_up=$!
  # At the end: a bring-up still running (stuck on apt, say) gets a minute, then is stopped; the cluster goes down.
  trap 'for _ in $(seq 60); do kill -0 "$cluster_up" 2>/dev/null || break; sleep 1; done
        kill "$cluster_up" 2>/dev/null || true; wait "$cluster_up" 2>/dev/null || true
        bash slurm/local_cluster.sh down 2>/dev/null || true; summary' EXIT
else
  echo "Slurm tests: deselected (not root; as root they run on a local cluster, slurm/local_cluster.sh)"
  select=(-m "not slurm")
fi
# One pytest-xdist worker per core (EGO4D_LTA_TEST_WORKERS overrides). --dist loadfile: the tests on the demo's
# run (tests/test_train.py) share one worker and one demo (xdist_group does not group under pytest 9: checked);
# --no-loadscope-reorder keeps conftest's file order (the demo first, the Slurm tests last) instead of xdist 3.7+'s
# largest-file-first.
# --durations: where the time went, in every CI log. Each test has a time limit (pyproject.toml). The run has a
# budget, EGO4D_LTA_TEST_BUDGET_S from this script's start (85 min by default, under a CI runner's 90-min kill):
# 7 min before it runs out no new test starts (pytest-timeout's session timeout: pytest then reports what ran and
# how long it took); at the end, SIGINT, and SIGKILL 3 min later.
budget=$(( ${EGO4D_LTA_TEST_BUDGET_S:-5100} - SECONDS ))
(( budget > 900 )) || budget=900
echo "tests: $(nproc) cores; no test starts after $((budget - 420)) s, stopped at ${budget} s"
timeout --signal=INT --kill-after=180 "$budget" \
  .venv/bin/python -m pytest -v -n "${EGO4D_LTA_TEST_WORKERS:-auto}" --dist loadfile --no-loadscope-reorder \
  --session-timeout $((budget - 420)) --durations=30 "${select[@]}" "$@"
