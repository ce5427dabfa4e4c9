#!/usr/bin/env bash
# Train and evaluate one config on a Cloud TPU VM slice (single- or multi-host), from your machine.
#
#   TPU_NAME=mmjax-v4 ZONE=us-central2-b ACCELERATOR_TYPE=v4-32 PROJECT=my-project \
#   WORKDIR=/mnt/shared/runs/soft_share DATA_DIR=/mnt/shared/data/synthetic launch/tpu_vm.sh
#
# Required: TPU_NAME ZONE ACCELERATOR_TYPE PROJECT, and WORKDIR: an absolute path on storage that
#   every worker mounts at that path (Filestore NFS, a gcsfuse-mounted bucket). mmjax writes it with
#   plain file I/O, so gs:// URLs do not work; a per-worker local disk only works on one-host slices.
# Optional: RUNTIME_VERSION (tpu-ubuntu2204-base), CONFIG (configs/soft_share.py), DATA_DIR
#   (--config.data.dir; absolute, readable by every worker at that path: with several hosts the
#   configs' default data_cache/synthetic is per worker and fails), EXTRA_ARGS (config overrides,
#   split on spaces, given to train and evaluate), DRY_RUN=1 (print the gcloud commands only).
#
# An existing TPU VM named TPU_NAME is reused. The tree shipped to ~/mmjax on every worker is this
# checkout as git sees it (tracked and untracked-but-not-ignored files, uncommitted edits included),
# so no pushed commit or repository credentials are needed. Re-running resumes from the last
# checkpoint in WORKDIR; the slice is left running: delete it with
#   gcloud compute tpus tpu-vm delete "$TPU_NAME" --zone="$ZONE" --project="$PROJECT"
set -euo pipefail

missing=""
for var in TPU_NAME ZONE ACCELERATOR_TYPE PROJECT WORKDIR; do
  [ -n "${!var:-}" ] || missing+=" $var"
done
if [ -n "$missing" ]; then
  echo "$0: missing required variable(s):$missing (see the comment at the top of $0)" >&2
  exit 2
fi
RUNTIME_VERSION=${RUNTIME_VERSION:-tpu-ubuntu2204-base}
CONFIG=${CONFIG:-configs/soft_share.py}
case $WORKDIR in
  /*) ;;
  *) echo "$0: WORKDIR=$WORKDIR must be an absolute path mounted on every worker (gs:// is not supported)" >&2
     exit 2 ;;
esac
case ${DATA_DIR:-/} in
  /*) ;;
  *) echo "$0: DATA_DIR=$DATA_DIR must be an absolute path readable on every worker" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
[ -f "$CONFIG" ] || { echo "$0: no config file $CONFIG in $(pwd)" >&2; exit 2; }

# Shell-quote arguments (plain where safe), for the remote command line and the DRY_RUN listing.
quote() {
  local a out=""
  for a in "$@"; do
    case $a in
      "" | *[!A-Za-z0-9_./:=,@%+-]*) a="'$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'" ;;
    esac
    out+="$a "
  done
  printf '%s\n' "${out% }"
}
run() {
  if [ "${DRY_RUN:-0}" = 1 ]; then quote "$@"; else "$@"; fi
}
tpu=(compute tpus tpu-vm)
where=(--zone="$ZONE" --project="$PROJECT")
on_all() { run gcloud "${tpu[@]}" ssh "$TPU_NAME" "${where[@]}" --worker=all --command="$1"; }

# 1. Create the slice, or reuse it if it exists with the requested accelerator type.
if [ "${DRY_RUN:-0}" = 1 ]; then
  run gcloud "${tpu[@]}" describe "$TPU_NAME" "${where[@]}" --format='value(state,acceleratorType)'
  echo "# if it does not exist:"
  existing=""
else
  existing=$(gcloud "${tpu[@]}" describe "$TPU_NAME" "${where[@]}" \
    --format='value(state,acceleratorType)' 2>/dev/null || true)
fi
if [ -z "$existing" ]; then
  run gcloud "${tpu[@]}" create "$TPU_NAME" "${where[@]}" \
    --accelerator-type="$ACCELERATOR_TYPE" --version="$RUNTIME_VERSION"
else
  read -r state type <<<"$existing"
  if [ "$state" != READY ] || [ "$type" != "$ACCELERATOR_TYPE" ]; then
    echo "$0: TPU VM $TPU_NAME exists as $type in state $state; wanted a READY $ACCELERATOR_TYPE" >&2
    exit 1
  fi
  echo "reusing TPU VM $TPU_NAME ($type)" >&2
fi

# 2. Ship the working tree (without .venv, runs/, data_cache/ and other ignored files).
tarball=$(mktemp "${TMPDIR:-/tmp}/mmjax.XXXXXX")
trap 'rm -f "$tarball"' EXIT
# Tracked and untracked-but-not-ignored files, less tracked files deleted in the working tree.
comm -23 <(git ls-files -co --exclude-standard | sort) <(git ls-files -d | sort) \
  | tar -czf "$tarball" -T -
echo "# packed $(tar -tzf "$tarball" | wc -l | tr -d ' ') files of $(pwd) into $tarball" >&2
run gcloud "${tpu[@]}" scp "$tarball" "$TPU_NAME":mmjax.tar.gz "${where[@]}" --worker=all

# 3. Install on every worker. The runtime image's python3 is 3.10 and mmjax needs >= 3.11.
#    -c constraints.txt pins jax[tpu] to the jax version pinned for the venv's Python.
on_all "mkdir -p mmjax && tar -xzf mmjax.tar.gz -C mmjax && rm mmjax.tar.gz && cd mmjax \
&& { dpkg -s make python3.11-venv >/dev/null 2>&1 || { sudo apt-get -q update \
&& sudo apt-get -o DPkg::Lock::Timeout=600 -qy install make python3.11-venv; }; } \
&& make --quiet .venv PYTHON=python3.11 \
&& .venv/bin/pip install --quiet -c constraints.txt 'jax[tpu]'"

# 4. Check that WORKDIR is one shared directory: a file made on worker 0 must be seen by all.
#    A per-worker directory would let each host write its own part of every checkpoint.
marker=$WORKDIR/.tpu_vm-shared-check
run gcloud "${tpu[@]}" ssh "$TPU_NAME" "${where[@]}" --worker=0 \
  --command="$(quote mkdir -p "$WORKDIR") && $(quote touch "$marker")"
on_all "test -e $(quote "$marker") || { echo >&2 \"\$(hostname):\" WORKDIR $(quote "$WORKDIR") \
is not shared with worker 0; exit 1; }"

# 5. Train, then evaluate on the test split. Both run on every worker: a slice's TPU chips are
#    driven by one program running on all its hosts together (jax.distributed), so evaluation
#    cannot run on worker 0 alone; only process 0 prints results and writes files.
read -r -a extra <<<"${EXTRA_ARGS:-}"
args=(--config="$CONFIG" --workdir="$WORKDIR")
[ -z "${DATA_DIR:-}" ] || args+=(--config.data.dir="$DATA_DIR")
args+=(${extra[@]+"${extra[@]}"})
on_all "cd mmjax && MMJAX_DISTRIBUTED=1 .venv/bin/python -m mmjax.train $(quote "${args[@]}")"
on_all "cd mmjax && MMJAX_DISTRIBUTED=1 .venv/bin/python -m mmjax.evaluate --step=best --split=test $(quote "${args[@]}")"
