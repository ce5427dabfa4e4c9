"""Model selection on the validation split (mmjax.selection): the split it needs, early stopping, the
rows each validation saves and selection measured on held-out halves of the split."""

import copy

import ml_collections
import numpy as np
import pytest

from mmjax import checkpointing, prepared_records, selection
from mmjax.errors import ConfigError, MmjaxError
from mmjax.tasks import Task
from tests.tiny import scored_checkpoints, tiny_config


def test_training_needs_a_validation_split_labelling_every_task(records_dir):
    config = tiny_config(records_dir)
    manifest = prepared_records.load_or_prepare(config)
    selection.check_validation_split(config, manifest)
    no_humor = copy.deepcopy(manifest)
    no_humor["splits"]["validation"]["class_counts"]["humor"] = {"none": 0, "humor": 0}
    no_humor["splits"]["validation"]["labelled"]["humor"] = 0
    with pytest.raises(ConfigError, match=r"validation split of .* labels no utterance for \['humor'\]"):
        selection.check_validation_split(config, no_humor)
    del no_humor["splits"]["validation"]
    with pytest.raises(ConfigError, match=r"have no validation split"):
        selection.check_validation_split(config, no_humor)


def test_per_task_early_stopping_waits_until_no_task_has_improved(tmp_path):
    workdir = str(tmp_path / "run")
    # The joint score peaks at step 1; emotion alone improves until step 3.
    scored_checkpoints(workdir, {1: {"sentiment": 0.6, "emotion": 0.1}, 2: {"sentiment": 0.3, "emotion": 0.2},
                                 3: {"sentiment": 0.2, "emotion": 0.3}, 4: {"sentiment": 0.2, "emotion": 0.2}})
    config = tiny_config(str(tmp_path))
    config.tasks, config.checkpoint_every_steps, config.early_stopping_patience = ("sentiment", "emotion"), 1, 2
    mngr = checkpointing.manager(workdir, create=False)
    assert selection.stopped_early(config, mngr, 2) is None and selection.stopped_early(config, mngr, 3) == 1
    config.checkpoint_selection = "per_task"
    assert selection.stopped_early(config, mngr, 4) is None  # emotion's best, step 3, is one checkpoint old
    assert selection.stopped_early(config, mngr, 5) == 3
    config.tasks = ("sentiment", "humor")  # a task no checkpoint scored (a run begun before): not yet stalled
    assert selection.stopped_early(config, mngr, 5) is None
    mngr.close()


def test_a_flat_task_keeps_its_first_best_step_and_lets_early_stopping_fire(tmp_path):
    """Only a strict improvement moves a best step: the manager keeps, and selection reads, the
    earliest of equal scores, so a task that stays flat after its peak does not hold training up."""
    workdir = str(tmp_path / "run")
    # Sentiment peaks at step 1, emotion at step 2 and stays there; the joint score is flat throughout.
    flat = {step: {"sentiment": 0.5 if step == 1 else 0.25, "emotion": 0.125 if step == 1 else 0.375}
            for step in range(1, 6)}  # exact in binary: the joint means tie exactly
    scored_checkpoints(workdir, flat, keep_latest=1)
    mngr = checkpointing.manager(workdir, create=False)
    assert mngr.all_steps() == [1, 2, 5]
    assert checkpointing.best_task_steps(mngr, ["sentiment", "emotion"]) == {"sentiment": 1, "emotion": 2}
    assert checkpointing.best_step(mngr) == 1
    config = tiny_config(str(tmp_path))
    config.tasks, config.checkpoint_every_steps, config.early_stopping_patience = ("sentiment", "emotion"), 1, 3
    assert selection.stopped_early(config, mngr, 4) == 1
    config.checkpoint_selection = "per_task"
    assert selection.stopped_early(config, mngr, 4) is None and selection.stopped_early(config, mngr, 5) == 2
    # The step just saved counts from its in-memory scores (its save may be in flight): a gain at step 6.
    assert selection.stopped_early(config, mngr, 6, {"sentiment": 0.25, "emotion": 0.5}) is None
    assert selection.stopped_early(config, mngr, 6, {"sentiment": 0.25, "emotion": 0.375}) == 2
    mngr.close()


def test_each_rule_selects_on_one_half_and_is_scored_on_the_other():
    # 40 dialogues of 5 utterances; step 1 gets task a right and b wrong, step 2 the reverse, step 3
    # both half right: per-task selection reads each task at its perfect step, joint cannot.
    tasks = [Task("a", ("no", "yes")), Task("b", ("no", "yes"))]
    n = 200
    labels = np.random.default_rng(0).integers(0, 2, n)
    position = np.stack([np.arange(n) // 5, np.arange(n) % 5], -1)
    half = np.where(np.arange(n) % 2, labels, 1 - labels)

    def rows(a, b):
        return {"position": position, "label/a": labels, "label/b": labels, "predicted/a": a, "predicted/b": b}

    by_step = {1: rows(labels, 1 - labels), 2: rows(1 - labels, labels), 3: rows(half, half)}
    config = ml_collections.ConfigDict({"selection_metric": "macro_f1"})
    halves = selection.random_halves(position[:, 0], 5, np.random.default_rng(1))
    assert all(len(half) == 20 and len(np.unique(half)) == 20 for half in halves)
    joint, per_task = selection.held_out(by_step, tasks, config, halves)
    assert joint.shape == per_task.shape == (5,)
    np.testing.assert_allclose(per_task, 1.0)
    assert np.all(joint < 0.75)  # one step for both tasks: one of them is wrong or both are half right


def test_rows_are_saved_per_step_and_read_back(tmp_path):
    rows = {"position": np.array([[0, 1], [2, 0]], np.int32), "label/a": np.array([1, 0]),
            "predicted/a": np.array([1, 1])}
    assert selection.saved_rows(str(tmp_path)) == {}
    for step in (20, 5):
        selection.save_rows(str(tmp_path), step, {**rows, "predicted/a": rows["predicted/a"] * step})
    saved = selection.saved_rows(str(tmp_path))
    assert list(saved) == [5, 20]
    np.testing.assert_array_equal(saved[20]["position"], rows["position"])
    np.testing.assert_array_equal(saved[5]["predicted/a"], [5, 5])
    (tmp_path / selection.ROWS_DIR / "step_30.npz").write_text("not a zip")
    with pytest.raises(MmjaxError, match="step_30.npz' is not a readable rows file"):
        selection.saved_rows(str(tmp_path))


def test_the_held_out_score_follows_the_runs_selection_rule_over_its_saved_steps(tmp_path):
    # Steps 2 and 4 each get one task right, step 5 (the last) both half right; step 3, validated but
    # not saved (checkpoints every 2 steps), both right: no rule may choose it.
    tasks = [Task("a", ("no", "yes")), Task("b", ("no", "yes"))]
    n = 200
    labels = np.random.default_rng(0).integers(0, 2, n)
    position = np.stack([np.arange(n) // 5, np.arange(n) % 5], -1)
    half = np.where(np.arange(n) % 2, labels, 1 - labels)
    rows = lambda a, b: {"position": position, "label/a": labels, "label/b": labels,  # noqa: E731
                         "predicted/a": a, "predicted/b": b}
    workdir = str(tmp_path)
    assert selection.held_out_score(workdir, None, tasks) is None  # no rows saved
    for step, r in {2: rows(labels, 1 - labels), 3: rows(labels, labels), 4: rows(1 - labels, labels),
                    5: rows(half, half)}.items():
        selection.save_rows(workdir, step, r)
    config = ml_collections.ConfigDict({"selection_metric": "macro_f1", "checkpoint_every_steps": 2,
                                        "checkpoint_selection": "per_task"})
    assert selection.held_out_score(workdir, config, tasks) == pytest.approx(1.0)  # a at step 2, b at step 4
    config.checkpoint_selection = "joint"  # one of steps 2, 4, 5 (3 was not saved): never both right
    assert selection.held_out_score(workdir, config, tasks) < 0.75
