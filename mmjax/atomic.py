"""Atomic file writes: a reader finds the previous file or the complete new one, never a part.

Paths go through ``etils.epath`` (as Orbax's do), so a ``gs://`` workdir is written the same
way; there the rename is a copy and a delete, and an object is replaced whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from etils import epath

from mmjax.errors import MmjaxError


def is_local(path) -> bool:
    """Whether ``path`` names the local filesystem (not a ``gs://``-style URL)."""
    return "://" not in str(path)


def write_atomically(path, write: Callable[[IO], None], binary: bool = False) -> None:
    """Calls ``write(f)`` on a temporary file beside ``path``, then renames it to ``path``. On an
    error the temporary file is removed; an OSError becomes one MmjaxError naming ``path``."""
    path = epath.Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") if binary else tmp.open("w", encoding="utf-8") as f:
            write(f)
        tmp.replace(path)
    except OSError as e:
        raise MmjaxError(f"cannot write {str(path)!r}: {e.strerror or e}") from e
    finally:
        if tmp.exists():
            tmp.unlink()
