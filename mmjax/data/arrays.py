"""Feature arrays read from files a user names (prepare's corpora, predict's input).

A file that claims too much is refused before it is read: only regular files (a FIFO or device
would block or never end), ``.npy`` without pickles, a header whose shape must fit in the file's
size, and of a long utterance only the frames the model reads (``frame_indices``, memory-mapped,
so a 20M-frame file costs what its 24 used frames cost). Paths inside an input file are confined
to that file's directory (``confined``).
"""

from __future__ import annotations

import math
import os
import stat

import numpy as np

from mmjax.errors import RecordError


def frame_indices(length: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``length`` frames, spread uniformly over the utterance:
    the frames the model reads (``pipeline`` pads to ``limit``)."""
    if length <= limit:
        return np.arange(length)
    return np.linspace(0, length - 1, limit).round().astype(np.int64)


def confined(path: str, base_dir: str, what: str, allow_outside: bool = False) -> str:
    """``path`` joined to ``base_dir`` (an absolute ``path`` as it is) when it stays inside
    ``base_dir`` after resolving ``..`` and symlinks (or ``allow_outside``); else RecordError, the
    same whether or not the outside file exists."""
    if allow_outside:
        return os.path.join(base_dir, path)
    base = os.path.realpath(base_dir)
    full = os.path.realpath(os.path.join(base, path))
    if os.path.commonpath([base, full]) != base:
        raise RecordError(f"{what} {path!r} leaves the input's directory {base_dir!r}; paths are relative to it "
                          "and stay inside (pass --allow_outside_paths to read others)")
    return full


def load_npy(path: str, max_frames: int | None = None) -> np.ndarray:
    """The array in the ``.npy`` file at ``path`` (never unpickling objects); with ``max_frames``,
    of a [frames, dim] array only the ``frame_indices`` rows. RecordError names the file."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise RecordError(f"{path}: not a regular file; expected a .npy array")
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
    except RecordError:
        raise
    except (OSError, ValueError) as e:
        raise RecordError(f"{path}: cannot read a .npy array ({e})") from e
    if dtype.hasobject:
        raise RecordError(f"{path}: holds Python objects (dtype {dtype}); expected a numeric array")
    claimed = math.prod(shape) * dtype.itemsize
    if offset + claimed > info.st_size:
        raise RecordError(f"{path}: its header claims a {shape} {dtype} array ({claimed:,} bytes) but the file "
                          f"holds {info.st_size:,} bytes")
    if claimed == 0:
        return np.zeros(shape, dtype)
    array = np.memmap(path, dtype, "r", offset, shape, "F" if fortran else "C")
    if max_frames is not None and array.ndim >= 2 and len(array) > max_frames:  # [dim]: one frame
        array = array[frame_indices(len(array), max_frames)]
    return np.array(array)
