#!/usr/bin/env bash
# Extract a feature cache as an array job, one shard per task:
#   sbatch --array=0-15 slurm/extract.sh --split train --slowfast-weights SF.ckpt --clip-weights ViT-B-16.pt \
#     [ego4d-lta extract arguments]
# Task i of n does shard i/n; a shard that was cut off resumes where it stopped when run again.
#SBATCH --job-name=ego4d-lta-extract
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=10
#SBATCH --time=12:00:00
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%A_%a.out
set -uo pipefail
LTA=${EGO4D_LTA_BIN:-$(command -v ego4d-lta || echo .venv/bin/ego4d-lta)}
shard="${SLURM_ARRAY_TASK_ID:-0}/${SLURM_ARRAY_TASK_COUNT:-1}"
if [ -n "${SLURM_ARRAY_TASK_MIN:-}" ] && [ "${SLURM_ARRAY_TASK_MIN}" -ne 0 ]; then
  echo "[slurm] array indices must start at 0 (--array=0-N), got ${SLURM_ARRAY_TASK_MIN}" >&2
  exit 2
fi
echo "[slurm] job ${SLURM_JOB_ID}: extract shard ${shard}"
exec "$LTA" extract --shard "$shard" --workers "$(( ${SLURM_CPUS_PER_TASK:-2} - 1 ))" "$@"
