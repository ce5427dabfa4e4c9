"""Confusion-matrix heat maps as PNG files, in pure numpy + zlib (no plotting dependency).

The images carry no text: rows are the true classes and columns the predicted classes, both in
the task's label order (which the report's JSON and the file name give). A cell's colour is its
share of the row (the recall of the true class spread over the predictions), from white (0) to
dark blue (1), so rare classes are as readable as frequent ones; a row of a class that never
occurs stays light grey.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from mmjax import atomic

CELL = 24  # pixels per confusion-matrix cell
GRID = 1  # pixels of the grey lines between cells
_LOW = np.array([255, 255, 255], np.float64)  # share 0
_HIGH = np.array([8, 48, 107], np.float64)  # share 1
_EMPTY = np.array([221, 221, 221], np.uint8)  # row of a class with no true examples
_LINE = np.array([160, 160, 160], np.uint8)


def heatmap_size(num_classes: int) -> int:
    """Width (= height) in pixels of the heat map of a [num_classes, num_classes] matrix."""
    return num_classes * (CELL + GRID) + GRID


def confusion_heatmap(confusion: np.ndarray) -> np.ndarray:
    """uint8 [size, size, 3] RGB image of a [true, predicted] count matrix, rows normalised."""
    confusion = np.asarray(confusion, np.float64)
    n = confusion.shape[0]
    totals = confusion.sum(1, keepdims=True)
    share = np.divide(confusion, totals, out=np.zeros_like(confusion), where=totals > 0)
    colours = (_LOW + share[..., None] * (_HIGH - _LOW)).round().astype(np.uint8)  # [n, n, 3]
    colours[totals[:, 0] == 0] = _EMPTY
    size = heatmap_size(n)
    image = np.empty((size, size, 3), np.uint8)
    image[:] = _LINE
    for i in range(n):
        for j in range(n):
            top, left = GRID + i * (CELL + GRID), GRID + j * (CELL + GRID)
            image[top:top + CELL, left:left + CELL] = colours[i, j]
    return image


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode(image: np.ndarray) -> bytes:
    """uint8 [height, width, 3] RGB -> PNG bytes (8-bit truecolour, no interlace, filter 0)."""
    image = np.ascontiguousarray(image, np.uint8)
    height, width, channels = image.shape
    if channels != 3:
        raise ValueError(f"expected an RGB image [height, width, 3], got shape {image.shape}")
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * 3)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 9))
            + _chunk(b"IEND", b""))


def write(path: str, image: np.ndarray) -> None:
    """Writes ``image`` as a PNG file atomically (temporary file, then rename)."""
    data = encode(image)
    atomic.write_atomically(path, lambda f: f.write(data), binary=True)
