import json
import os
import socket
import subprocess
import sys

import pytest

from mmjax import workdir_lock
from mmjax.errors import MmjaxError
from tests.tiny import run_module


def _lock_for(workdir, pid: int, host: str | None = None) -> str:
    path = os.path.join(workdir, workdir_lock.LOCK)
    with open(path, "w") as f:
        json.dump({"host": host or socket.gethostname(), "pid": pid, "started": "2026-11-25 10:00:00 UTC"}, f)
    return path


def test_the_lock_is_held_while_inside_refused_to_a_second_holder_and_released(tmp_path):
    path = tmp_path / workdir_lock.LOCK
    with workdir_lock.hold(str(tmp_path)):
        holder = json.loads(path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(MmjaxError, match=f"in use by another mmjax.train \\(host {socket.gethostname()}, "
                                             f"pid {os.getpid()}, started "):
            with workdir_lock.hold(str(tmp_path)):
                pass
        assert path.exists()  # the refused one did not remove the holder's lock
    assert not path.exists()
    with workdir_lock.hold(str(tmp_path), enabled=False):  # other hosts of a multi-host run
        assert not path.exists()


def test_a_dead_holders_lock_is_taken_over_and_another_hosts_is_respected(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lock_for(tmp_path, dead.pid)
    with workdir_lock.hold(str(tmp_path)):
        assert json.loads((tmp_path / workdir_lock.LOCK).read_text())["pid"] == os.getpid()
    assert any("taking over the stale lock" in m for m in caplog.messages)

    _lock_for(tmp_path, dead.pid, host="another-host")  # cannot be checked from here
    with pytest.raises(MmjaxError, match="host another-host"):
        with workdir_lock.hold(str(tmp_path)):
            pass


def test_a_second_trainer_is_refused_in_one_line_naming_the_holder(tmp_path, records_dir):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock_for(tmp_path, holder.pid)
        code, out = run_module("mmjax.train", "--config=tests/tiny.py", f"--config.data.dir={records_dir}",
                               f"--workdir={tmp_path}")
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and f"pid {holder.pid}" in out and "Traceback" not in out, out
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "config.json").exists()
