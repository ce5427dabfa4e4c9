"""Progress bars on stderr: process 0, on a terminal, unless turned off.

A bar never writes into a redirected log (tqdm's carriage returns would fill it): it is off when
stderr is not a terminal, on every process but the first, and everywhere with
``MMJAX_PROGRESS=0``. Long work still reports its results as lines.
"""

from __future__ import annotations

import os
import sys

import jax
import tqdm


def shown() -> bool:
    """Whether progress bars are drawn in this process."""
    return os.environ.get("MMJAX_PROGRESS", "1") != "0" and jax.process_index() == 0 and sys.stderr.isatty()


def bar(iterable=None, *, desc: str, unit: str, total: int | None = None, initial: int = 0,
        leave: bool = True, enabled: bool = True) -> tqdm.tqdm:
    """A tqdm bar on stderr, drawn where ``shown()`` and ``enabled``."""
    return tqdm.tqdm(iterable, desc=desc, unit=unit, total=total, initial=initial, leave=leave, file=sys.stderr,
                     disable=not (enabled and shown()), dynamic_ncols=True)


def exclude_pause(progress: tqdm.tqdm, seconds: float) -> None:
    """Leaves ``seconds`` of other work (validation, checkpoints) out of a bar's rate and ETA."""
    if not progress.disable:
        progress.start_t += seconds
        progress.last_print_t += seconds
