import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import losses, metrics


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
