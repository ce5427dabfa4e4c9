"""The validation-half measurement of checkpoint selection (benchmarks/selection_transfer.py)."""

import ml_collections
import numpy as np

from benchmarks import selection_transfer
from mmjax.tasks import Task


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
    joint, per_task = selection_transfer.transfer(by_step, tasks, config, 5, np.random.default_rng(1))
    assert joint.shape == per_task.shape == (5,)
    np.testing.assert_allclose(per_task, 1.0)
    assert np.all(joint < 0.75)  # one step for both tasks: one of them is wrong or both are half right
