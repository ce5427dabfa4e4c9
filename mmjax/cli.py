"""Shared start-up for the command-line entry points."""

from __future__ import annotations

import contextlib
import os
import sys

import jax
from absl import logging

from mmjax.errors import MmjaxError


def initialize() -> None:
    """Multi-host runs set MMJAX_DISTRIBUTED=1 (launch scripts do) to join jax.distributed."""
    if os.environ.get("MMJAX_DISTRIBUTED") == "1":
        jax.distributed.initialize()
    # Orbax and XLA log every save and backend probe at INFO; keep the console to progress and results.
    logging.set_verbosity(logging.WARNING)
    if jax.process_index() == 0:
        print(f"JAX {jax.__version__}: {jax.process_count()} process(es), {jax.device_count()} "
              f"{jax.devices()[0].platform} device(s)", file=sys.stderr)


@contextlib.contextmanager
def user_errors(program: str):
    """Bad input (config, corpus, paths) ends the program with one line naming the culprit."""
    try:
        yield
    except MmjaxError as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        sys.exit(2)
