"""The validation-half measurement of checkpoint selection (benchmarks/selection_transfer.py)."""

import ml_collections
import numpy as np
import pytest

from benchmarks import selection_transfer
from mmjax import saved_run, selection
from mmjax.data import records
from mmjax.tasks import TASKS
from tests.test_linear_peer import _dialogues
from tests.tiny import scored_checkpoints


def test_the_peer_is_selected_per_task_on_validation_rows_in_record_order(tmp_path):
    # The keyword corpus of tests/test_linear_peer.py: sentiment is its utterance's keyword, so the
    # peer gets it right at large C; its rows line up with the records' (dialogue, turn) positions.
    path = str(tmp_path / "keywords")
    records.write_corpus(path, "keywords", {s: _dialogues(s, n) for s, n in (("train", 24), ("validation", 6),
                                                                            ("test", 6))},
                         tasks=[TASKS["sentiment"]], audio_dim=0, visual_dim=0, text={"kind": "word"})
    tasks = [TASKS["sentiment"]]
    by_c = selection_transfer.peer_rows(path, tasks)
    assert sorted(by_c) == sorted(selection_transfer.linear_peer.C_GRID)
    rows = by_c[max(by_c)]
    np.testing.assert_array_equal(rows["position"], [(d, t) for d in range(6) for t in range(4)])
    labelled = rows["label/sentiment"] >= 0
    for d, dialogue in enumerate(_dialogues("validation", 6)):  # the labels are the records', in order
        np.testing.assert_array_equal(rows["label/sentiment"][4 * d + 1:4 * d + 4], dialogue.labels["sentiment"][1:])
    assert np.mean(rows["predicted/sentiment"][labelled] == rows["label/sentiment"][labelled]) == 1.0
    config = ml_collections.ConfigDict({"selection_metric": "macro_f1"})
    halves = selection.random_halves(rows["position"][:, 0], 4, np.random.default_rng(0))
    _, per_task = selection.held_out(by_c, tasks, config, halves)
    assert per_task.shape == (4,) and np.all(per_task == 1.0)  # the C chosen on A is right on B


def test_a_run_that_deleted_checkpoints_is_refused(tmp_path):
    # Kept: the latest and each score's best, steps already chosen on the whole validation split.
    workdir = str(tmp_path / "run")
    scored_checkpoints(workdir, {step: {"a": 1 / step} for step in range(2, 12, 2)}, keep_latest=1)  # keeps 2, 10
    saved_run.write_json(tmp_path / "run" / saved_run.CONFIG, {"checkpoint_every_steps": 2})
    for every in (1, 2):  # the steps expected are the multiples of both --every and the interval saved
        with pytest.raises(SystemExit, match=rf"saved steps at multiples of {every}: \[2, 10\], lacking \[4, 6, 8\]; "
                                             r"selection needs every one \(train with --config.max_checkpoints_to_keep"):
            selection_transfer.validation_rows(workdir, every)
