"""Preemption: on SIGTERM or SIGINT, training finishes its step, saves a checkpoint and exits 0.

TPU VM maintenance, spot/preemptible VMs and SLURM send SIGTERM a while before they kill a job.
A single-process run catches SIGTERM and SIGINT (Ctrl-C) here. A multi-process run
(jax.distributed) leaves SIGTERM to JAX's preemption notifier and asks Orbax's
``CheckpointManager.reached_preemption`` every step, whose sync point makes every host save at
the same step (as MaxText does). A second signal stops at once; the previous checkpoint stands.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

import jax


class Watch:
    """Context manager over the training loop; ``reached(step)`` says whether to save and stop."""

    def __init__(self, mngr):
        self.mngr = mngr
        self.reason: str | None = None  # what asked training to stop
        self._distributed = jax.process_count() > 1
        self._previous = {}
        self._since, self._announced = 0.0, False

    def __enter__(self):
        # Python runs signal handlers in the main thread only, and only it may install them.
        if not self._distributed and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False

    def _handle(self, signum, frame):
        # Only flags: printing here could re-enter a write the signal interrupted. A repeat within
        # a second is the same request delivered twice (to the process group and by a launcher).
        if self.reason is not None and time.monotonic() - self._since > 1.0:
            signal.signal(signum, self._previous[signum])  # the second request: stop now
            signal.raise_signal(signum)
        elif self.reason is None:
            self.reason, self._since = signal.Signals(signum).name, time.monotonic()

    def reached(self, step: int) -> bool:
        """True at the step where training should save and stop (every host agrees on it)."""
        if self._distributed and self.mngr.reached_preemption(step):
            self.reason = "a preemption notice"
        if self.reason is not None and not self._announced:
            self._announced = True
            print(f"\n{self.reason} received: saving a checkpoint at step {step} (send it again to stop at once)",
                  file=sys.stderr)
        return self.reason is not None
