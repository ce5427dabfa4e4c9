"""Model selection on the validation split (mmjax.selection): the split it needs and early stopping."""

import copy

import pytest

from mmjax import checkpointing, prepared_records, selection
from mmjax.errors import ConfigError
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
