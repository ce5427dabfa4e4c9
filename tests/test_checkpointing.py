import json
import os
import shutil
import signal
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from mmjax import checkpointing, evaluation, inputs, prediction, restored_run, run_evaluation, setup as setup_lib, trainer
from mmjax.data import records
from mmjax.errors import MmjaxError
from tests.tiny import run_module, run_on_a_small_disk, tiny_config


def _final_params(workdir: str, step: int):
    """The parameters and their moving average saved at ``step``."""
    mngr = checkpointing.manager(workdir, create=False)
    restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return jax.device_get({k: restored["state"][k] for k in ("params", "ema_params")})


def _logged_steps(workdir: str) -> list[int]:
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line)["step"] for line in f if '"split": "train"' in line]


@pytest.mark.slow
def test_sigkill_between_checkpoints_then_rerun_is_bit_identical(records_dir, tmp_path):
    args = ["mmjax.train", "--config=tests/tiny.py", f"--config.data.dir={records_dir}",
            "--config.num_train_steps=30", "--config.checkpoint_every_steps=10", "--config.log_every_steps=1",
            "--config.eval_every_steps=100", "--config.model.dropout=0.1", "--config.ema_decay=0.9"]
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    code, out = run_module(*args, f"--workdir={straight}")
    assert code == 0, out

    process = run_module(*args, f"--workdir={killed}", wait=False)
    committed = os.path.join(killed, "checkpoints", "10", "commit_success.txt")
    deadline = time.time() + 180
    while not os.path.exists(committed):  # the async save of step 10 has finished
        assert process.poll() is None and time.time() < deadline, process.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    latest, reached = checkpointing.manager(killed, create=False).latest_step(), max(_logged_steps(killed))
    assert latest is not None and latest % 10 == 0 and reached > latest < 30  # killed between checkpoints

    code, out = run_module(*args, f"--workdir={killed}")
    assert code == 0, out
    assert f"from its checkpoint at step {latest}" in out
    jax.tree.map(np.testing.assert_array_equal, _final_params(killed, 30), _final_params(straight, 30))
    assert _logged_steps(killed) == list(range(1, 31))  # the steps logged twice were dropped

    # SIGTERM between checkpoints: the step finishes, a checkpoint is saved there, exit 0; the
    # rerun ends where the uninterrupted run did.
    terminated = str(tmp_path / "terminated")
    process = run_module(*args, f"--workdir={terminated}", wait=False)
    deadline = time.time() + 180
    while max(_logged_steps(terminated), default=0) < 13:
        assert process.poll() is None and time.time() < deadline, process.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    out = process.communicate(timeout=180)[1].decode()
    assert process.returncode == 0, out[-2000:]
    stopped = checkpointing.manager(terminated, create=False).latest_step()
    assert 13 <= stopped < 20 and f"stopped by SIGTERM at step {stopped}" in out, out[-2000:]
    code, out = run_module(*args, f"--workdir={terminated}")
    assert code == 0 and f"from its checkpoint at step {stopped}" in out, out
    jax.tree.map(np.testing.assert_array_equal, _final_params(terminated, 30), _final_params(straight, 30))

    # Resuming with another learning rate is refused, naming it; training longer is allowed.
    code, out = run_module(*args, f"--workdir={killed}", "--config.learning_rate=0.5")
    assert code == 2 and "learning_rate=0.5 (recorded 0.002)" in out and "Traceback" not in out, out
    longer = [a.replace("num_train_steps=30", "num_train_steps=32") for a in args]
    code, out = run_module(*longer, f"--workdir={killed}")
    assert code == 0, out
    assert _logged_steps(killed) == list(range(1, 33))


@pytest.mark.slow
def test_keeps_latest_and_best_and_never_picks_up_an_incomplete_save(records_dir, tmp_path):
    config = tiny_config(records_dir)
    config.num_train_steps, config.checkpoint_every_steps, config.max_checkpoints_to_keep = 8, 2, 1
    workdir = str(tmp_path / "run")
    trainer.train_and_evaluate(config, workdir)
    mngr = checkpointing.manager(workdir, create=False)
    scores = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if record["split"] == "validation":
                scores[record["step"]] = record["score"]
    best = max(scores, key=scores.get)
    assert set(mngr.all_steps()) == {8, best}
    assert checkpointing.best_step(mngr) == best
    assert run_evaluation.evaluate(config, workdir, split="validation", step="best") == run_evaluation.evaluate(
        config, workdir, split="validation", step=best)

    # What a save killed half-way leaves: Orbax's temporary directory, never renamed.
    checkpoints = os.path.join(workdir, "checkpoints")
    partial = os.path.join(checkpoints, "10.orbax-checkpoint-tmp-1795")
    shutil.copytree(os.path.join(checkpoints, "8"), partial)
    os.remove(os.path.join(partial, "commit_success.txt"))
    assert checkpointing.manager(workdir, create=False).latest_step() == 8
    assert run_evaluation.evaluate(config, workdir, split="validation")["sarcasm"]["support"] > 0

    # A flipped byte in the latest step: evaluating it stops with one line; the rerun resumes
    # from the best step (the one before), keeps the damaged step aside and saves it anew.
    _flip_a_byte(os.path.join(checkpoints, "8"))
    with pytest.raises(checkpointing.DamagedCheckpoint, match="step 8 is damaged"):
        run_evaluation.evaluate(config, workdir, split="validation", step=8)
    config.num_train_steps = 10
    trainer.train_and_evaluate(config, workdir)
    assert os.listdir(os.path.join(checkpoints, checkpointing.DAMAGED)) == ["8"]
    assert checkpointing.manager(workdir, create=False).latest_step() == 10
    assert _logged_steps(workdir) == list(range(2, 11, 2))  # one line per logged step


@pytest.fixture(scope="module")
def one_device_state(records_dir):
    """(config, setup, initial state) of the tiny config on one device, shared by the tests here."""
    config = tiny_config(records_dir)
    s = setup_lib.build(config, jax.devices()[:1])
    return config, s, setup_lib.initial_state(s)


def test_a_checkpoint_without_a_moving_average_restores_and_can_start_one(one_device_state, tmp_path):
    """Checkpoints written before ``ema_params`` existed (a TrainState of three fields) resume;
    a run that now asks for a moving average starts it from the restored params."""
    config, s, state = one_device_state
    config = config.copy_and_resolve_references()
    old_layout = {"step": state.step, "params": state.params, "opt_state": state.opt_state}
    mngr = checkpointing.manager(str(tmp_path))
    mngr.save(1, metrics={checkpointing.SCORE: 0.5}, args=ocp.args.Composite(state=ocp.args.StandardSave(old_layout)))
    mngr.wait_until_finished()
    restored = checkpointing.restore(mngr, 1, s.abstract_state)
    assert restored.ema_params is None
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored.params), jax.device_get(state.params))
    config.ema_decay = 0.9
    with_ema = checkpointing.restore(mngr, 1, setup_lib.build(config, jax.devices()[:1]).abstract_state)
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(with_ema.ema_params), jax.device_get(state.params))
    mngr.close()


def _flip_a_byte(step_dir: str) -> None:
    """Flips one byte in the middle of the step's largest array file."""
    files = [os.path.join(root, name) for root, _, names in os.walk(os.path.join(step_dir, "state"))
             for name in names]
    path = max(files, key=os.path.getsize)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))


def _truncate_arrays(step_dir: str) -> None:
    for root, _, names in os.walk(os.path.join(step_dir, "state")):
        for name in names:
            if os.path.basename(root) == "d":
                os.truncate(os.path.join(root, name), 100)


def test_damaged_checkpoints_are_named_skipped_and_kept_aside(one_device_state, tmp_path, caplog, capsys):
    """Flipped, emptied and truncated steps: each is one line naming the step and what is wrong;
    training falls back to the newest step that restores and moves the others aside (kept);
    evaluation of "latest" falls back without touching the workdir, of a number stops."""
    config, s, state = one_device_state
    data = iter(inputs.train_dataset(config, s.manifest, 0, 1))
    workdir = str(tmp_path / "run")
    mngr = checkpointing.manager(workdir)
    for step in (1, 2, 3, 4):
        checkpointing.save(mngr, step, state.replace(step=step), data, 0.5)
    checkpointing.seal(mngr)
    steps = {step: os.path.join(workdir, "checkpoints", str(step)) for step in (1, 2, 3, 4)}
    assert all(os.path.exists(os.path.join(d, checkpointing.CHECKSUMS)) for d in steps.values())
    _flip_a_byte(steps[4])
    shutil.rmtree(steps[3]), os.mkdir(steps[3])  # emptied
    os.remove(os.path.join(steps[2], checkpointing.CHECKSUMS))  # not sealed: found by restoring
    _truncate_arrays(steps[2])

    def restore_train_state(step):
        return checkpointing.restore(mngr, step, s.abstract_state, data)

    with pytest.raises(checkpointing.DamagedCheckpoint, match=r"step 4 is damaged: state/.* differs from its checksum"):
        checkpointing.checked_restore(mngr, 4, restore_train_state)
    restored = restored_run.restore(workdir, "latest", config, manifest=s.manifest)
    assert restored.step == 1 and sorted(mngr.all_steps()) == [1, 2, 3, 4]  # read-only
    with pytest.raises(MmjaxError, match="step 3 is damaged: it does not restore"):
        restored_run.restore(workdir, 3, config, manifest=s.manifest)
    caplog.clear()

    step, restored = checkpointing.restore_newest(mngr, restore_train_state, set_aside=True)
    assert step == 1 and int(restored.step) == 1
    lines = [m for m in caplog.messages if "trying the one before" in m]  # one warning per damaged step
    assert "Traceback" not in capsys.readouterr().err  # and no echo of Orbax's own failures
    assert [line.split(" is damaged")[0] for line in lines] == [f"the checkpoint at step {n}" for n in (4, 3, 2)]
    assert "does not restore" in lines[0 + 2] and "moved aside" in lines[2]
    assert mngr.all_steps() == [1]
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints", checkpointing.DAMAGED))) == ["2", "3", "4"]
    checkpointing.save(mngr, 2, state.replace(step=2), data, 0.5)  # the step is saved anew
    mngr.wait_until_finished()
    assert mngr.all_steps() == [1, 2]

    for step in (1, 2):
        shutil.rmtree(os.path.join(workdir, "checkpoints", str(step)))
    mngr.reload()
    with pytest.raises(MmjaxError, match="no checkpoint in .* restores"):
        _flip_a_byte(os.path.join(workdir, "checkpoints", checkpointing.DAMAGED, "4"))
        mngr.close()
        checkpointing.restore_newest(checkpointing.manager(workdir), lambda step: None, set_aside=False)


@pytest.mark.slow
def test_a_full_disk_at_a_save_is_one_line_and_the_rerun_resumes(records_dir, tmp_path):
    disk = str(tmp_path / "disk")
    train = (f"$PY -m mmjax.train --config=tests/tiny.py --config.data.dir={records_dir} --workdir={disk}/run "
             "--config.num_train_steps=12 --config.eval_every_steps=100")
    code, out = run_on_a_small_disk(disk, "4m", f"""
{train} 2>&1; echo "first exit=$?"
mount -o remount,size=64m {disk}
{train} 2>&1; echo "second exit=$?"; ls {disk}/run/checkpoints""")
    assert code == 0, out
    first, second = out.split("first exit=")
    assert second.startswith("2\n") and "Traceback" not in first, out[-3000:]
    error = [line for line in first.splitlines() if "mmjax.train: error:" in line]
    assert len(error) == 1 and "no space left on the device of" in error[0], out[-3000:]
    intact = [int(s) for s in error[0].split("checkpoints at steps ")[1].split(" are")[0].split(", ")]
    assert f"from its checkpoint at step {max(intact)}" in second and "second exit=0" in second, second[-3000:]
    assert "12" in second.split("second exit=0")[1].split()  # the rerun saved the last step (ls lists the kept steps)


def test_per_task_selection_keeps_and_restores_each_tasks_best_step(one_device_state, tmp_path):
    """Each task's best step is kept besides the latest and the joint best; ``--step=best``
    restores each task's own step (evaluation and prediction read each task from it: the test
    below)."""
    workdir, config, s, expected = _per_task_run(one_device_state, tmp_path)
    mngr = checkpointing.manager(workdir, create=False)
    assert checkpointing.best_task_steps(mngr, config.tasks) == expected
    assert mngr.all_steps() == [1, 2, 3, 5]  # step 4 is no one's best and not the latest
    mngr.close()
    run = restored_run.restore(workdir, "best", config, manifest=s.manifest)
    assert run.task_steps == expected and run.step == expected and not run.kept  # restored when evaluated
    relations = {at: evaluation.learned_task_relations(params, config, s.manifest) for at, params, _ in run.by_step()}
    assert sorted(relations) == [1, 2]
    # The evaluation report's task relations: each tower's cross-stitch row from its task's step.
    merged = run_evaluation.merge_task_relations(relations, run.task_steps)
    single = {step: evaluation.learned_task_relations(restored_run.restore(workdir, step, config, manifest=s.manifest)
                                                      .kept[step], config, s.manifest) for step in (1, 2)}
    for layer, rows in merged["cross_stitch"].items():
        for i, task in enumerate(merged["tasks"]):
            assert rows[i] == single[expected[task]]["cross_stitch"][layer][i]
        assert rows != single[1]["cross_stitch"][layer]  # the steps' rows differ: the check can fail
    config.checkpoint_selection = "joint"
    assert restored_run.restore(workdir, "best", config, manifest=s.manifest).step == 3
    with pytest.raises(MmjaxError, match="per-task selection needs a run trained with"):
        checkpointing.best_task_steps(checkpointing.manager(workdir, create=False), ["sentiment_intensity"])


@pytest.mark.slow
def test_per_task_selection_evaluates_and_predicts_each_task_with_its_step(one_device_state, tmp_path):
    workdir, config, s, expected = _per_task_run(one_device_state, tmp_path)
    single = {step: run_evaluation.evaluate(config, workdir, "validation", step, verbose=False) for step in (1, 2)}
    best = run_evaluation.evaluate(config, workdir, "validation", "best", verbose=False)
    assert list(best) == list(config.tasks)
    assert all(best[t] == single[at][t] for t, at in expected.items())
    assert any(best[t] != single[1][t] for t in config.tasks)  # the steps predict differently: the test can fail
    with open(os.path.join(workdir, "eval_validation.json")) as f:
        assert json.load(f)["step"] == expected

    dialogues = records.DialogueSource(config.data.dir, "validation", s.manifest)
    by_step = {step: prediction.probabilities(restored_run.restore(workdir, step, config, manifest=s.manifest),
                                              dialogues, progress=False) for step in (1, 2)}
    per_task = prediction.probabilities(restored_run.restore(workdir, "best", config, manifest=s.manifest), dialogues,
                                        progress=False)
    for d, got in enumerate(per_task):
        for t, at in expected.items():
            np.testing.assert_array_equal(got[t], by_step[at][d][t])
    assert not np.array_equal(per_task[0]["sentiment"], by_step[2][0]["sentiment"])


def _per_task_run(one_device_state, tmp_path):
    """A workdir of 5 saved steps whose parameters differ, trained with per-task selection:
    (workdir, config, setup, {task: its best step}): sentiment peaks at step 1, sarcasm at 2, the
    joint score at 3; the other tasks score the same at every step (their best: the earliest)."""
    config, s, state = one_device_state
    config = config.copy_and_resolve_references()
    config.checkpoint_selection = "per_task"
    data = iter(inputs.train_dataset(config, s.manifest, 0, 1))
    workdir = str(tmp_path / "run")
    mngr = checkpointing.manager(workdir, keep_latest=1, best_of_tasks=config.tasks)
    for step in range(1, 6):
        rng = np.random.default_rng(step)
        params = jax.tree.map(lambda p: p + (0.3 * rng.standard_normal(p.shape)).astype(p.dtype), state.params)
        scores = {t: 0.0 for t in config.tasks} | {"sentiment": float(step == 1), "sarcasm": float(step == 2)}
        checkpointing.save(mngr, step, state.replace(step=step, params=params), data, -abs(step - 3), scores)
    mngr.close()
    return workdir, config, s, {t: 2 if t == "sarcasm" else 1 for t in config.tasks}
