#!/usr/bin/env bash
# submit.sh: submit a reg study to Slurm as a job array of SHARDS tasks plus a merge job that
# starts when every task has succeeded (--dependency=afterok).
#
#   REG_BIN=~/reg/target/release/examples REG_DATA=/shared/data/mnist \
#     deploy/slurm/submit.sh ablation 7 --epochs 10 --seeds 5
#
# Prints "array=<job id> merge=<job id>". Settings (environment):
#   REG_BIN      folder of the release examples (required)
#   REG_DATA     folder with the four MNIST files (required)
#   REG_RESULTS  results folder shared by all tasks (default /shared/$user/reg/STUDY)
#   REG_LOGS     folder for the task and merge logs (default ./logs)
#   REG_CPUS     CPUs per task (default 2; each run uses as many threads)
#   REG_MERGE_ARGS  flags for the merge, e.g. "--plot /shared/me/ablation.svg" (word-split)
#   REG_MERGE_JOB   after tasks failed: the merge job still pending (DependencyNeverSatisfied).
#                   The array is submitted again (tasks skip the finished runs) and that merge
#                   job is pointed at the new array (scontrol update ... Dependency=afterok:NEW)
#                   instead of a second merge being submitted.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,20p' "$0" >&2
  exit 2
fi
study=$1 shards=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
# Slurm does not set USER in a job's environment; the user is defined here, once.
user=${SLURM_JOB_USER:-${USER:-$(id -un)}}
: "${REG_BIN:?REG_BIN: the folder of the release examples}"
: "${REG_DATA:?REG_DATA: the folder with the four MNIST files}"
export REG_BIN REG_DATA REG_STUDY=$study
export REG_RESULTS=${REG_RESULTS:-/shared/$user/reg/$study}
logs=${REG_LOGS:-logs}
mkdir -p "$logs" "$REG_RESULTS"

array=$(sbatch --parsable --array="0-$((shards - 1))" --job-name="reg-$study" \
  --cpus-per-task="${REG_CPUS:-2}" --output="$logs/%x-%A_%a.out" \
  "$here/study-array.sbatch" "$@")
array=${array%%;*}

if [ -n "${REG_MERGE_JOB:-}" ]; then
  scontrol update JobId="$REG_MERGE_JOB" Dependency="afterok:$array"
  merge=$REG_MERGE_JOB
else
  # shellcheck disable=SC2086 # REG_MERGE_ARGS is a list of flags
  merge=$(sbatch --parsable --dependency="afterok:$array" --job-name="reg-$study-merge" \
    --output="$logs/%x-%j.out" "$here/study-merge.sbatch" ${REG_MERGE_ARGS:-})
  merge=${merge%%;*}
fi
echo "array=$array merge=$merge"
