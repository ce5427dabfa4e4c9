#!/usr/bin/env bash
# Train one config with several seeds, evaluate each run's best-by-validation checkpoint on the
# test split, and aggregate mean and standard deviation over the seeds:
#
#   launch/seeds.sh configs/cmma.py runs/cmma_soft "0 1 2" [--config.key=value ...]
#
# Runs go to WORKDIR_s<seed>; the aggregate to WORKDIR_s0-1-2/eval_test_seeds.json. Extra
# arguments are config overrides for training (the evaluation uses the config each run recorded).
set -euo pipefail
if [ $# -lt 3 ]; then
  echo "usage: $0 CONFIG_FILE WORKDIR \"SEED ...\" [--config.key=value ...]" >&2
  exit 2
fi
config=$1 workdir=$2 seeds=$3
shift 3
cd "$(dirname "$0")/.."
make --quiet .venv
source launch/forward_signals.sh
for seed in $seeds; do
  forward .venv/bin/python -m mmjax.train --config="$config" --workdir="${workdir}_s${seed}" \
    --config.seed="$seed" "$@"
done
.venv/bin/python -m mmjax.evaluate --workdir="${workdir}_s{seed}" --seeds="${seeds// /,}" \
  --step=best --split=test
