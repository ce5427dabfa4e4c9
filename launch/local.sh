#!/usr/bin/env bash
# Train and evaluate one config on this machine (CPU or local GPUs), in the project's .venv.
#
#   launch/local.sh configs/soft_share.py runs/soft_share [--config.num_train_steps=300 ...]
#
# Extra arguments are config overrides for training; the evaluation uses the config the run
# recorded (its config.json), so a run trained under an older version of a config evaluates too.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 CONFIG_FILE WORKDIR [--config.key=value ...]" >&2
  exit 2
fi
config=$1 workdir=$2
shift 2
cd "$(dirname "$0")/.."
make --quiet .venv
source launch/forward_signals.sh
forward .venv/bin/python -m mmjax.train --config="$config" --workdir="$workdir" "$@"
.venv/bin/python -m mmjax.evaluate --workdir="$workdir" --step=best --split=test
