import struct
import zlib

import numpy as np

from mmjax import png


def read_png(data: bytes) -> np.ndarray:
    """Decodes the PNGs mmjax writes (8-bit RGB, filter 0), checking signature, chunk CRCs and
    that IEND ends the file; returns uint8 [height, width, 3]."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        offset += 12 + length
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, colour, interlace) == (8, 2, 0)
    raw = np.frombuffer(zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT")), np.uint8)
    rows = raw.reshape(height, 1 + 3 * width)
    assert not rows[:, 0].any()  # filter type 0 on every row
    return rows[:, 1:].reshape(height, width, 3)


def _cell(image, i, j):
    return tuple(image[png.GRID + i * (png.CELL + png.GRID) + png.CELL // 2,
                       png.GRID + j * (png.CELL + png.GRID) + png.CELL // 2])


def test_heatmap_png_round_trips_with_row_shares_as_colours(tmp_path):
    confusion = np.array([[4, 0, 0], [1, 1, 0], [0, 0, 0]])  # class 2 never occurs
    path = str(tmp_path / "c.png")
    png.write(path, png.confusion_heatmap(confusion))
    image = read_png(open(path, "rb").read())
    assert image.shape == (png.heatmap_size(3), png.heatmap_size(3), 3) == (76, 76, 3)
    assert _cell(image, 0, 0) == (8, 48, 107)  # share 1: darkest
    assert _cell(image, 0, 1) == (255, 255, 255)  # share 0: white
    assert _cell(image, 1, 0) == _cell(image, 1, 1) == (132, 152, 181)  # share 1/2: halfway
    assert _cell(image, 2, 2) == (221, 221, 221)  # row of a class with no examples
    assert tuple(image[0, 0]) == (160, 160, 160)  # grid line
