"""Atomic file writes: a reader finds the previous file or the complete new one, never a part;
and ``read_json_object``, which reads back the JSON objects they wrote.

Paths go through ``etils.epath`` (as Orbax's do), so a ``gs://`` workdir is written the same
way; there the rename is a copy and a delete, and an object is replaced whole.
"""

from __future__ import annotations

import json
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


def read_json_object(path, error: type[MmjaxError] = MmjaxError, remedy: str = "restore it or write it again") -> dict:
    """The JSON object in ``path``; a file that is not one (edited by hand, truncated by a copy)
    raises ``error`` naming it and ``remedy``, instead of the decoder's position-only message."""
    path = epath.Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{str(path)!r} is not a valid JSON file ({e}); {remedy}") from None
    if not isinstance(value, dict):
        raise error(f"{str(path)!r} holds a JSON {type(value).__name__}, expected an object; {remedy}")
    return value
