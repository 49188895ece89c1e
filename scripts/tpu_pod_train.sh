#!/usr/bin/env bash
# Runs `jtoolformer train` on every worker of an existing TPU VM (a v3-8/v4-8 or a pod slice) at once.
# Creates nothing. Every worker must already have this repository at $REPO_DIR with its virtualenv
# (scripts/setup.sh), the model and the --data/--eval-data files at the same paths, and --out must be
# a directory all workers share (a Filestore/NFS or gcsfuse mount): orbax writes each host's shards
# there. On more than one worker the run starts with jax.distributed (distributed=true: TPU VMs find
# the coordinator themselves); a preempted or killed run resumes when the same command is run again.
#
#   scripts/tpu_pod_train.sh TPU_NAME ZONE -- --config configs/train_gptj_6b.yaml \
#       --data /mnt/shared/cstar.jsonl --eval-data /mnt/shared/heldout.jsonl --out /mnt/shared/runs/gptj \
#       steps=2000
#
# Environment: REPO_DIR (default ~/jtoolformer), PROJECT (gcloud --project, optional).
set -euo pipefail

if [[ $# -lt 3 || $3 != "--" ]]; then
  echo "usage: $0 TPU_NAME ZONE -- [jtoolformer train arguments ...]" >&2
  exit 2
fi
tpu=$1
zone=$2
shift 3

repo_dir=${REPO_DIR:-'~/jtoolformer'}
project_args=()
if [[ -n ${PROJECT:-} ]]; then
  project_args=(--project "$PROJECT")
fi

workers=$(gcloud compute tpus tpu-vm describe "$tpu" --zone "$zone" "${project_args[@]}" \
  --format='value(networkEndpoints.len())')
distributed=false
if [[ ${workers:-1} -gt 1 ]]; then
  distributed=true
fi

remote="cd $repo_dir && .venv/bin/jtoolformer train $(printf '%q ' "$@") distributed=$distributed"
echo "on $workers worker(s) of $tpu: $remote" >&2
exec gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" "${project_args[@]}" --worker=all \
  --command "$remote"
