#!/usr/bin/env bash
# Train on Slurm: `sbatch [sbatch flags] slurm/train.sh [ego4d-lta train arguments]`, from the repository root
# with the environment that has `ego4d-lta` (sbatch passes it on). Every #SBATCH line below is a default
# that the same flag on the sbatch command line overrides; partition, account and constraint come from
# flags or SBATCH_* variables, never from this file. One task per GPU: `--ntasks-per-node` = `--gpus-per-node`.
#
#   sbatch --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 --partition=P slurm/train.sh --config slowfast_clip
#
# Before the time limit Slurm sends SIGUSR2 to every task: training saves last.pt and stops, and this script
# requeues the job, which resumes from last.pt. Preemption (SIGTERM) and `scontrol requeue` resume the same way.
#SBATCH --job-name=ego4d-lta-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --time=24:00:00
#SBATCH --signal=USR2@120
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --output=slurm-%x-%j.out
set -uo pipefail
LTA=${EGO4D_LTA_BIN:-$(command -v ego4d-lta || echo .venv/bin/ego4d-lta)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
if [ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]; then
  set -- "$@" --resume   # a requeued job continues its own run from last.pt
fi
# The rendezvous for every task: the job's first host (Slurm's own expansion of the node list) and a port
# derived from the job id, so two jobs sharing a node do not collide. Set either beforehand to choose it.
MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" 2>/dev/null | head -n 1)}
[ -n "$MASTER_ADDR" ] && export MASTER_ADDR  # else ego4d-lta expands SLURM_JOB_NODELIST itself (submitit's parser)
export MASTER_PORT=${MASTER_PORT:-$(( 20000 + SLURM_JOB_ID % 20000 ))}
echo "[slurm] job ${SLURM_JOB_ID} restart ${SLURM_RESTART_COUNT:-0}: ${SLURM_JOB_NUM_NODES} nodes (${SLURM_JOB_NODELIST}), $(( SLURM_NTASKS )) tasks, master ${MASTER_ADDR:-?}:${MASTER_PORT}"
srun --kill-on-bad-exit=1 "$LTA" train "$@"
status=$?
if [ "$status" -eq 140 ]; then  # 128 + SIGUSR2: stopped for the time limit, last.pt saved
  echo "[slurm] time limit near: requeueing job ${SLURM_JOB_ID}"
  scontrol requeue "$SLURM_JOB_ID"
fi
exit "$status"
