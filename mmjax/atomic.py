"""Atomic file writes: a reader finds the previous file or the complete new one, never a part."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import IO

from mmjax.errors import MmjaxError


def write_atomically(path: str, write: Callable[[IO], None], binary: bool = False) -> None:
    """Calls ``write(f)`` on a temporary file beside ``path``, then renames it to ``path``. On an
    error the temporary file is removed; an OSError becomes one MmjaxError naming ``path``."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "wb") if binary else open(tmp, "w", encoding="utf-8") as f:
            write(f)
        os.replace(tmp, path)
    except OSError as e:
        raise MmjaxError(f"cannot write {path!r}: {e.strerror}") from e
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
