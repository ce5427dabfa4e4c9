import os
import subprocess

import pytest

from tests.tiny import REPO

SCRIPT = os.path.join(REPO, "launch", "accelerator_benchmark.sh")


@pytest.mark.parametrize("python, code", [("false", 1), ("true", 0)])
def test_exit_status_says_whether_anything_was_measured(tmp_path, python, code):
    """Every rung failing (here: an interpreter that fails) is exit 1 with a message; a rung that
    ran is exit 0. Run in an empty directory: the stand-in interpreters write nothing."""
    env = dict(os.environ, PYTHON=python, RUNGS="tiny_f32_b32 base_bf16_b128_dot")
    result = subprocess.run(["bash", SCRIPT, str(tmp_path / "out")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == code, result.stderr
    assert ("every one of the 3 rungs and profiles that ran failed" in result.stderr) == (code == 1), result.stderr
