"""One trainer per workdir: a lock file naming its holder (host, pid, start time).

Two trainers on one workdir would overwrite each other's checkpoints and logs. ``hold`` creates
``train.lock`` atomically (written to a temporary file, then hard-linked into place, so the lock
never exists half-written) and removes it when training ends. A lock whose holder ran on this
host and is no longer alive (a killed trainer) is stale and taken over, with a line saying so;
a holder on another host cannot be checked from here, so its lock is respected. Evaluation and
prediction take no lock: they only read.

A workdir in a bucket (``gs://``) has neither hard links nor processes to ask, so there no lock
is taken (a warning says so): start one trainer per bucket workdir.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time

from mmjax.atomic import is_local
from mmjax.errors import MmjaxError

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)

LOCK = "train.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _read(path: str) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _is_stale(holder: dict) -> bool:
    return holder["host"] == socket.gethostname() and not _alive(holder["pid"])


def _describe(holder: dict) -> str:
    return f"host {holder['host']}, pid {holder['pid']}, started {holder['started']}"


def _try_create(path: str, holder: dict) -> bool:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(holder, f)
    try:
        os.link(tmp, path)  # fails if the lock exists: creation and content are one step
        return True
    except FileExistsError:
        return False
    finally:
        os.remove(tmp)


@contextlib.contextmanager
def hold(workdir: str, enabled: bool = True):
    """Holds ``workdir``'s lock for the duration (``enabled=False``: the other processes of a
    multi-host run, whose process 0 holds it). Raises MmjaxError naming the holder when another
    live trainer holds it."""
    if not enabled:
        yield
        return
    if not is_local(workdir):
        _log.warning("no lock on %s (a bucket has no hard links): run one mmjax.train on it at a time", workdir)
        yield
        return
    path = os.path.join(workdir, LOCK)
    me = {"host": socket.gethostname(), "pid": os.getpid(),
          "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    while not _try_create(path, me):
        holder = _read(path)
        if holder is None:  # released meanwhile
            continue
        if not _is_stale(holder):
            raise MmjaxError(f"workdir {workdir!r} is in use by another mmjax.train ({_describe(holder)}); "
                             f"wait for it to finish, or delete {path} if that process is gone")
        _log.warning("taking over the stale lock %s (%s: no such process)", path, _describe(holder))
        if _read(path) == holder:  # not replaced by another taker meanwhile
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    try:
        yield
    finally:
        if _read(path) == me:
            os.remove(path)
