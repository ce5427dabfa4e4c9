"""Two processes joined by jax.distributed on 127.0.0.1 (4 fake CPU devices each) train exactly
like one process with 8 devices: same global batches, same losses; only process 0 writes logs."""

import json
import os
import socket

import pytest

from tests.tiny import run_module


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_losses(workdir: str) -> dict[int, float]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    train = [r for r in lines if r["split"] == "train"]
    steps = [r["step"] for r in train]
    assert len(steps) == len(set(steps)), "a step was logged twice: more than one process wrote logs"
    return {r["step"]: r["loss"] for r in train}


@pytest.mark.slow
@pytest.mark.parametrize("pack_text", [False, True])  # packed: the hosts agree on the rows of each batch
def test_two_processes_match_one(tmp_path, pack_text):
    records = str(tmp_path / "records")  # made by process 0 of the 2-process run, read by both
    args = ["mmjax.train", "--config=tests/tiny.py", f"--config.data.dir={records}",
            "--config.num_train_steps=6", "--config.log_every_steps=1", "--config.checkpoint_every_steps=3",
            f"--config.data.pack_text={pack_text}"]
    port = _free_port()
    processes = [
        run_module(*args, f"--workdir={tmp_path / 'two'}", wait=False, env={
            "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "MMJAX_DISTRIBUTED": "1",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "MMJAX_NUM_PROCESSES": "2",
            "MMJAX_PROCESS_ID": str(i)})
        for i in range(2)]
    for p in processes:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-3000:]
    code, out = run_module(*args, f"--workdir={tmp_path / 'one'}",
                           env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert code == 0, out
    two, one = _train_losses(str(tmp_path / "two")), _train_losses(str(tmp_path / "one"))
    assert sorted(two) == sorted(one) == list(range(1, 7))
    for step in one:
        assert abs(two[step] - one[step]) <= 1e-5 * abs(one[step]), (step, two[step], one[step])


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_one_saved_step(tmp_path):
    """JAX's preemption notifier takes SIGTERM; Orbax's sync point makes both processes save the
    same step and exit 0."""
    import signal
    import time

    from mmjax import checkpointing

    records, workdir = str(tmp_path / "records"), str(tmp_path / "run")
    args = ["mmjax.train", "--config=tests/tiny.py", f"--config.data.dir={records}", f"--workdir={workdir}",
            "--config.num_train_steps=400", "--config.log_every_steps=1", "--config.checkpoint_every_steps=200",
            "--config.eval_every_steps=200"]
    port = _free_port()
    processes = [
        run_module(*args, wait=False, env={
            "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "MMJAX_DISTRIBUTED": "1",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "MMJAX_NUM_PROCESSES": "2",
            "MMJAX_PROCESS_ID": str(i)})
        for i in range(2)]
    metrics, deadline = os.path.join(workdir, "metrics.jsonl"), time.time() + 240
    while not (os.path.exists(metrics) and len(open(metrics).readlines()) >= 5):
        assert all(p.poll() is None for p in processes) and time.time() < deadline
        time.sleep(0.05)
    processes[1].send_signal(signal.SIGTERM)
    errors = [p.communicate(timeout=240)[1].decode() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], errors[0][-3000:] + errors[1][-3000:]
    stopped = checkpointing.manager(workdir, create=False).latest_step()
    assert stopped is not None and 5 <= stopped < 200
    assert f"stopped by a preemption notice at step {stopped}" in errors[0], errors[0][-3000:]
