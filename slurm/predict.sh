#!/usr/bin/env bash
# Predict on Slurm: `sbatch slurm/predict.sh --run runs/NAME --split test [ego4d-lta predict arguments]`.
# Windows are split over the tasks (`--ntasks-per-node`/`--nodes` override); rank 0 writes and validates the
# submission under submissions/.
#SBATCH --job-name=ego4d-lta-predict
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=2:00:00
#SBATCH --output=slurm-%x-%j.out
set -uo pipefail
LTA=${EGO4D_LTA_BIN:-$(command -v ego4d-lta || echo .venv/bin/ego4d-lta)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
srun --kill-on-bad-exit=1 "$LTA" predict "$@"
