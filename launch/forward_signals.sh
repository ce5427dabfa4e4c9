# Sourced by the local launch scripts. `forward CMD...` runs CMD with SIGTERM and SIGINT passed on
# to it (bash alone would hold them until CMD ends): mmjax.train then finishes its step, saves a
# checkpoint and exits 0. After a forwarded signal the calling script stops (STOPPED is set), so a
# stopped training is not followed by evaluation; rerunning the script resumes.
STOPPED=""
forward() {
  set -m  # CMD in its own process group: a terminal's Ctrl-C reaches only this script, which passes it on
  "$@" &
  set +m
  local child=$! status=0
  trap 'STOPPED=1; kill -TERM "$child" 2>/dev/null' TERM INT
  wait "$child" || status=$?
  while kill -0 "$child" 2>/dev/null; do  # wait was interrupted by the trap: wait for the exit
    status=0
    wait "$child" || status=$?
  done
  trap - TERM INT
  if [ -n "$STOPPED" ]; then
    echo "$(basename "$0"): stopped by a signal; run the same command again to resume" >&2
    exit "$status"
  fi
  return "$status"
}
