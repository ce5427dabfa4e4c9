import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import losses, metrics
from mmjax.tasks import MULTILABEL, REGRESSION, TASKS, Task
from tests.tiny import quick_jit


def test_confusion_matrix_ignores_unlabelled_positions():
    logits = jnp.array([[[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0], [5.0, 0, 0]]])
    labels = jnp.array([[0, 2, 2, -1]])
    np.testing.assert_array_equal(metrics.confusion_matrix(logits, labels),
                                  [[1, 0, 0], [0, 0, 0], [0, 1, 1]])


def test_scores_by_hand():
    # truth: 3 x class0, 1 x class1; predictions: class0 for all but one class0 predicted as 1.
    confusion = np.array([[2, 1, 0], [1, 0, 0], [0, 0, 0]])
    s = metrics.scores(confusion)
    assert s["accuracy"] == pytest.approx(0.5)
    f1_class0 = 2 * (2 / 3) * (2 / 3) / (4 / 3)  # precision 2/3, recall 2/3
    # class 1: precision 0, recall 0 -> F1 0; class 2 never occurs in truth or predictions: left out.
    assert s["macro_f1"] == pytest.approx(f1_class0 / 2)
    assert s["weighted_f1"] == pytest.approx(f1_class0 * 3 / 4)
    assert s["support"] == 4


def test_majority_prediction_scores():
    s = metrics.constant_prediction_scores([8, 2], predicted_class=0)
    assert s["accuracy"] == pytest.approx(0.8)
    assert s["macro_f1"] == pytest.approx((2 * 0.8 / 1.8) / 2)


def test_masked_cross_entropy_sums_only_labelled():
    logits = jnp.log(jnp.array([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]]))
    total, count = losses.masked_cross_entropy(logits, jnp.array([0, -1, 1]))
    assert float(count) == 2
    assert float(total) == pytest.approx(-np.log(0.5) - np.log(0.8), rel=1e-6)


def test_per_class_by_hand_with_classes_never_occurring():
    # rows: true class, columns: predicted. Class 2 never occurs nor is predicted; class 3 never
    # occurs but is predicted once.
    confusion = np.array([[2, 1, 0, 1],
                          [1, 1, 0, 0],
                          [0, 0, 0, 0],
                          [0, 0, 0, 0]])
    c = metrics.per_class(confusion)
    np.testing.assert_allclose(c["precision"], [2 / 3, 1 / 2, 0, 0])  # zero_division=0 for class 2
    np.testing.assert_allclose(c["recall"], [1 / 2, 1 / 2, 0, 0])
    np.testing.assert_allclose(c["f1"], [4 / 7, 1 / 2, 0, 0])
    np.testing.assert_array_equal(c["support"], [4, 2, 0, 0])
    np.testing.assert_array_equal(c["predicted"], [3, 2, 0, 1])
    s = metrics.scores(confusion)
    assert s["accuracy"] == pytest.approx(3 / 6)
    assert s["macro_f1"] == pytest.approx((4 / 7 + 1 / 2 + 0) / 3)  # class 3 counts (predicted), class 2 not
    assert s["weighted_f1"] == pytest.approx((4 / 7 * 4 + 1 / 2 * 2) / 6)


def test_multilabel_scores_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score
    task = Task("topics", ("a", "b", "c", "d"), kind=MULTILABEL)
    rng = np.random.default_rng(0)
    truth = (rng.random((40, 4)) < 0.3).astype(np.int32)
    truth[:, 3] = 0  # a label that never applies and is never predicted: F1 0 in the macro mean
    logits = rng.normal(size=(40, 4)).astype(np.float32)
    logits[:, 3] = -1.0
    labels = np.concatenate([truth, np.full((5, 4), -1, np.int32)])  # 5 unlabelled rows
    outputs = np.concatenate([logits, np.ones((5, 4), np.float32)])
    predicted = np.asarray(metrics.predict(task, outputs))
    s = metrics.task_scores(task, metrics.host_statistics(task, predicted, labels))
    guess = (logits > 0).astype(np.int32)
    assert s["support"] == 40
    assert s["exact_match"] == pytest.approx(accuracy_score(truth, guess))
    for average in ("micro", "macro", "weighted"):
        assert s[f"{average}_f1"] == pytest.approx(f1_score(truth, guess, average=average, zero_division=0))
    np.testing.assert_allclose(s["per_label"]["f1"], f1_score(truth, guess, average=None, zero_division=0))


def test_regression_scores_by_hand_and_against_mmsa_definitions():
    from scipy.stats import pearsonr
    from sklearn.metrics import f1_score
    task = TASKS["sentiment_intensity"]  # [-3, 3]
    y = np.array([-2.6, -0.4, 0.0, 0.0, 1.2, 3.0, np.nan], np.float32)
    p = np.array([-1.0, 0.2, -0.3, 0.0, 2.9, 2.2, 1.0], np.float32)
    s = metrics.task_scores(task, metrics.host_statistics(task, p, y))
    y, p = y[:6], p[:6]
    assert s["support"] == 6
    assert s["mae"] == pytest.approx(np.abs(p - y).mean(), abs=1e-6)
    assert s["mse"] == pytest.approx(np.square(p - y).mean(), abs=1e-6)
    assert s["corr"] == pytest.approx(pearsonr(p, y)[0], abs=1e-5)
    # MMSA: has0 -> (y >= 0) vs (p >= 0); non0 -> the y != 0 rows, (y > 0) vs (p > 0); F1 weighted.
    assert s["acc2_has0"] == pytest.approx(np.mean((y >= 0) == (p >= 0)))
    assert s["f1_has0"] == pytest.approx(f1_score(y >= 0, p >= 0, average="weighted"))
    nz = y != 0
    assert s["acc2_non0"] == pytest.approx(np.mean((y[nz] > 0) == (p[nz] > 0)))
    assert s["f1_non0"] == pytest.approx(f1_score(y[nz] > 0, p[nz] > 0, average="weighted"))
    assert s["acc7"] == pytest.approx(np.mean(np.round(np.clip(y, -3, 3)) == np.round(np.clip(p, -3, 3))))


def test_regression_predictions_are_clipped_and_a_constant_prediction_correlates_zero():
    task = Task("rating", kind=REGRESSION, value_range=(1.0, 5.0))
    values = np.asarray(metrics.predict(task, np.array([[-2.0], [0.0], [0.5]], np.float32)))
    np.testing.assert_allclose(values, [1.0, 3.0, 4.0])  # outputs live on [-1, 1] over the range
    stats = metrics.host_statistics(task, np.full(3, 3.0, np.float32), np.array([1.0, 2.0, 5.0], np.float32))
    s = metrics.task_scores(task, stats)
    assert metrics.constant_regression_scores(task, stats, 2.5)["mse"] == pytest.approx((2.25 + 0.25 + 6.25) / 3)
    assert s["corr"] == 0.0 and s["mae"] == pytest.approx(5 / 3)
    # The middle of [1, 5] is 3: has0 counts a prediction of 3 as the upper side, non0 as the lower.
    assert s["acc2_has0"] == pytest.approx(1 / 3) and s["acc2_non0"] == pytest.approx(2 / 3)


def test_constant_baselines_of_the_new_kinds():
    task = TASKS["sentiment_intensity"]
    y = np.array([-2.0, 0.0, 1.0, 3.0], np.float32)
    stats = metrics.host_statistics(task, np.zeros(4, np.float32), y)
    baseline = metrics.constant_regression_scores(task, stats, 0.5)
    assert baseline["mse"] == pytest.approx(np.mean(np.square(y - 0.5)))
    assert baseline["acc2_has0"] == pytest.approx(0.75) and baseline["acc7"] == pytest.approx(0.25)  # 0.5 -> level 0 or 1
    labels = Task("topics", ("a", "b"), kind=MULTILABEL)
    truth = np.array([[1, 0], [1, 1], [1, 0], [0, 0]], np.int32)
    stats = metrics.host_statistics(labels, np.zeros_like(truth), truth)
    always_a = metrics.constant_multilabel_scores(stats["label_counts"], 4, np.array([True, False]))
    assert always_a["macro_f1"] == pytest.approx((2 * 3 / 7) / 2)  # a: precision 3/4, recall 1 -> 6/7; b: 0


def test_statistics_on_the_device_and_on_the_host_agree_for_every_kind():
    rng = np.random.default_rng(0)
    cases = [(TASKS["sentiment"], rng.integers(0, 3, (4, 5)), rng.integers(-1, 3, (4, 5))),
             (TASKS["sentiment_intensity"], rng.uniform(-3, 3, (4, 5)),
              np.where(rng.random((4, 5)) < 0.2, np.nan, rng.uniform(-3, 3, (4, 5)))),
             (Task("topics", ("a", "b", "c"), kind=MULTILABEL), rng.integers(0, 2, (4, 5, 3)),
              np.where(rng.random((4, 5, 1)) < 0.2, -1, rng.integers(0, 2, (4, 5, 3))))]
    for task, predicted, labels in cases:
        predicted, labels = predicted.astype(task.label_dtype), labels.astype(task.label_dtype)
        device = quick_jit(lambda p, y, task=task: metrics.statistics(task, p, y))(predicted, labels)
        host = metrics.host_statistics(task, predicted, labels)
        assert set(device) == set(host)
        for key in host:
            np.testing.assert_allclose(np.asarray(device[key]), host[key], rtol=1e-5, err_msg=f"{task.name} {key}")
