import types

import numpy as np
import pytest

from mmjax import breakdowns
from mmjax.tasks import TASKS


def test_rows_groups_and_scores_by_hand():
    # Two windows of T=3 rows; -1 marks context-only or padding rows (not counted).
    batch = {"position": np.array([[[0, 0], [0, 1], [-1, -1]], [[-1, -1], [1, 0], [1, 1]]]),
             "present/text": np.ones((2, 3), bool),
             "present/audio": np.array([[True, False, False], [True, True, True]]),
             "label/sentiment": np.array([[0, 1, -1], [-1, 1, -1]]),
             "predicted/sentiment": np.array([[0, 0, 2], [2, 1, 2]])}
    rows = breakdowns.utterance_rows([batch])
    np.testing.assert_array_equal(rows["position"], [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(breakdowns.modality_patterns(rows, ("text", "audio")),
                                  ["text+audio", "text", "text+audio", "text+audio"])
    dialogues = [types.SimpleNamespace(speakers=["ann", "bob"]), types.SimpleNamespace(speakers=["bob", "cy"])]
    groups = breakdowns.speaker_groups(rows, dialogues, top=1, labelled=rows["label/sentiment"] >= 0)
    np.testing.assert_array_equal(groups, [breakdowns.OTHER, "bob", "bob", breakdowns.OTHER])
    scores = breakdowns.group_scores(groups, rows["label/sentiment"], rows["predicted/sentiment"], TASKS["sentiment"])
    assert list(scores) == ["bob", breakdowns.OTHER]  # largest first, the rest last
    # bob: true 1 -> predicted 0, true 1 -> predicted 1; other: true 0 -> 0 (turn 1,1 is unlabelled)
    assert scores["bob"]["accuracy"] == pytest.approx(0.5) and scores["bob"]["support"] == 2
    assert scores["bob"]["macro_f1"] == pytest.approx((0 + 2 / 3) / 2)
    assert scores[breakdowns.OTHER] == {"accuracy": 1.0, "macro_f1": 1.0, "weighted_f1": 1.0, "support": 1}


def test_top_speakers_are_counted_over_labelled_utterances_only():
    # cy speaks three context-only (unlabelled) turns, ann two labelled ones: ann is the top speaker.
    rows = {"position": np.array([[0, 0], [0, 1], [0, 2], [0, 3], [0, 4]]),
            "label/sarcasm": np.array([-1, -1, -1, 1, 0]), "label/humor": np.array([-1, -1, -1, -1, 1])}
    dialogues = [types.SimpleNamespace(speakers=["cy", "cy", "cy", "ann", "ann"])]
    labelled = (rows["label/sarcasm"] >= 0) | (rows["label/humor"] >= 0)
    groups = breakdowns.speaker_groups(rows, dialogues, top=1, labelled=labelled)
    np.testing.assert_array_equal(groups, [breakdowns.OTHER] * 3 + ["ann"] * 2)


def test_regression_groups_score_their_labelled_values():
    task = TASKS["sentiment_intensity"]
    groups = np.array(["ann", "ann", "bob", "bob"])
    labels = np.array([1.0, np.nan, -2.0, 2.0], np.float32)
    predicted = np.array([0.5, 3.0, -1.0, 1.0], np.float32)
    scores = breakdowns.group_scores(groups, labels, predicted, task)
    assert scores["bob"]["mae"] == pytest.approx(1.0) and scores["bob"]["corr"] == pytest.approx(1.0)
    assert scores["ann"]["support"] == 1 and scores["ann"]["mae"] == pytest.approx(0.5)  # NaN: unlabelled
