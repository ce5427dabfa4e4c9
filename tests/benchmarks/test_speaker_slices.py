"""The frequent-speaker slices of benchmarks/speaker_slices.py."""

import collections

import numpy as np
import pytest

from benchmarks import speaker_slices
from mmjax.tasks import Task


def test_slices_score_the_labelled_utterances_of_each_group():
    labels = np.array([0, 1, 0, 1, 0, 1, -1])
    predicted = np.array([0, 1, 0, 1, 1, 0, 1])  # right on the frequent speakers, wrong on the rest
    frequent = np.array([True, True, True, True, False, False, True])  # the last is unlabelled
    scores = speaker_slices.slice_scores(Task("sarcasm", ("no", "yes")), labels, predicted, frequent)
    assert scores["frequent"] == pytest.approx(100.0) and scores["other"] == pytest.approx(0.0)
    assert scores["all"] == pytest.approx(66.666, abs=1e-2)  # 4 of 6 right, both classes alike


def test_overlap_counts_the_3_grams_seen_twice_in_training():
    seen = collections.Counter({"abc": 2, "bcd": 1})
    assert speaker_slices.overlap(["abcd", "xy"], seen) == pytest.approx(0.5)  # abc yes, bcd no; "xy" has none


def test_slice_scores_average_over_the_classes_a_slice_sees_as_sklearn_does():
    from sklearn.metrics import f1_score  # the reference the project's metrics replace here

    task = Task("emotion", ("neutral", "joy", "anger"))
    labels = np.array([0, 0, 1, 1, 0, 2, -1])
    predicted = np.array([0, 2, 1, 0, 0, 0, 1])  # anger predicted on a frequent speaker, never true there
    frequent = np.array([True, True, True, True, False, False, False])
    scores = speaker_slices.slice_scores(task, labels, predicted, frequent)
    labelled = labels >= 0
    for name, mask in (("all", labelled), ("frequent", frequent & labelled), ("other", ~frequent & labelled)):
        assert scores[name] == pytest.approx(100 * f1_score(labels[mask], predicted[mask], average="macro")), name


def test_an_empty_slice_is_one_clear_error(records_dir):
    with pytest.raises(SystemExit, match="no validation utterance comes from a speaker with at least "
                       "--min_utterances=1000000 training utterances"):
        speaker_slices.main(["--data_dir", records_dir, "--min_utterances=1000000"])
