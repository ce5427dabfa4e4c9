import os

import numpy as np
import pytest

from mmjax.data import arrays
from mmjax.errors import RecordError


def test_frame_indices_spread_over_the_utterance():
    assert arrays.frame_indices(3, 5).tolist() == [0, 1, 2]
    assert arrays.frame_indices(10, 4).tolist() == [0, 3, 6, 9]


def test_load_npy_reads_only_the_frames_used_and_checks_the_header(tmp_path):
    path = str(tmp_path / "a.npy")
    np.save(path, np.arange(100, dtype=np.float32).reshape(50, 2))
    np.testing.assert_array_equal(arrays.load_npy(path, max_frames=3), [[0, 1], [48, 49], [98, 99]])
    assert arrays.load_npy(path).shape == (50, 2)
    with open(path, "r+b") as f:  # cut the file short of what its header claims
        f.truncate(os.path.getsize(path) - 8)
    with pytest.raises(RecordError, match=r"a.npy: its header claims a \(50, 2\) float32 array \(400 bytes\)"):
        arrays.load_npy(path)
    np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(RecordError, match="holds Python objects"):
        arrays.load_npy(path)


def test_confined_paths_stay_in_the_directory(tmp_path):
    inside = tmp_path / "in"
    inside.mkdir()
    assert arrays.confined("x/a.npy", str(inside), "audio") == str(inside / "x" / "a.npy")
    assert arrays.confined(str(inside / "x" / "a.npy"), str(inside), "audio") == str(inside / "x" / "a.npy")
    for path in ("../a.npy", "/etc/hostname", "x/../../a.npy"):
        with pytest.raises(RecordError, match=f"audio {path!r} leaves the input's directory"):
            arrays.confined(path, str(inside), "audio")
    assert arrays.confined("../a.npy", str(inside), "audio", allow_outside=True) == os.path.join(str(inside), "../a.npy")
