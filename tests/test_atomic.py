import os

import pytest

from mmjax import atomic
from mmjax.errors import MmjaxError


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "report.json")
    atomic.write_atomically(path, lambda f: f.write("old"))

    def fail(f):
        f.write("half of the new")
        raise ValueError("interrupted")
    with pytest.raises(ValueError):
        atomic.write_atomically(path, fail)
    assert open(path).read() == "old" and os.listdir(tmp_path) == ["report.json"]
    atomic.write_atomically(path, lambda f: f.write(b"\x89PNG"), binary=True)
    assert open(path, "rb").read() == b"\x89PNG"


def test_an_unwritable_place_is_one_error_naming_the_path(tmp_path):
    path = str(tmp_path / "missing_dir" / "out.jsonl")
    with pytest.raises(MmjaxError, match=f"cannot write '{path}'"):
        atomic.write_atomically(path, lambda f: f.write("x"))
