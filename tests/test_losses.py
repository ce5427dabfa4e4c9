import jax
import numpy as np
import pytest

from configs import common
from mmjax import configuration, losses
from mmjax.errors import ConfigError
from mmjax.tasks import MULTILABEL, REGRESSION, TASKS, Task, to_manifest
from tests.tiny import quick_jit

COUNTS = {"sarcasm": {"none": 90, "sarcastic": 10},
          "sentiment": {"negative": 30, "neutral": 0, "positive": 60}}  # "neutral" never seen


def _config(**overrides):
    config = common.get_config()
    config.tasks = ("sentiment", "sarcasm")
    for key, value in overrides.items():
        config[key] = value
    return config


@pytest.mark.parametrize("kind, power", [("inverse_frequency", 1.0), ("sqrt_inverse", 0.5)])
def test_class_weights_from_train_counts(kind, power):
    manifest = {"splits": {"train": {"class_counts": COUNTS}}, "tasks": to_manifest(TASKS[t] for t in COUNTS)}
    weights = losses.class_weights(_config(class_weights=kind), manifest)
    for task, counts in COUNTS.items():
        n = np.array(list(counts.values()), np.float64)
        w = weights[task]
        seen = n > 0
        np.testing.assert_allclose(np.sum(n * w) / n.sum(), 1.0, rtol=1e-6)  # average 1 over labels
        np.testing.assert_allclose(w[seen] * n[seen] ** power, (w[seen] * n[seen] ** power)[0], rtol=1e-6)
        np.testing.assert_allclose(w[~seen], w[seen].max())  # unseen: as the rarest seen class
    np.testing.assert_allclose(losses.class_weights(_config(class_weights="inverse_frequency"), manifest)["sarcasm"],
                               [100 / (2 * 90), 100 / (2 * 10)], rtol=1e-6)  # scikit-learn's "balanced"
    assert losses.class_weights(_config(), manifest) is None


def test_class_weighted_cross_entropy_keeps_the_label_count():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    labels = np.array([0, 1, -1], np.int32)
    plain, count = quick_jit(losses.masked_cross_entropy)(logits, labels)
    weighted, weighted_count = quick_jit(losses.masked_cross_entropy)(logits, labels, np.array([0.5, 3.0], np.float32))
    per_position = -(logits - np.log(np.exp(logits).sum(-1, keepdims=True)))[[0, 1], labels[:2]]
    np.testing.assert_allclose(plain, per_position.sum(), rtol=1e-6)
    np.testing.assert_allclose(weighted, 0.5 * per_position[0] + 3.0 * per_position[1], rtol=1e-6)
    assert float(count) == float(weighted_count) == 2.0


@pytest.mark.parametrize("kind", ["l1", "mse"])
def test_regression_loss_is_on_the_unit_scale_and_nan_labels_are_masked_with_finite_gradients(kind):
    task = Task("rating", kind=REGRESSION, value_range=(1.0, 5.0))  # unit value = (y - 3) / 2
    outputs = np.array([[0.5], [-1.0], [0.0]], np.float32)
    labels = np.array([5.0, 2.0, np.nan], np.float32)
    error = np.array([0.5 - 1.0, -1.0 - (-0.5)])
    total, count = quick_jit(lambda o: losses.masked_loss(task, o, labels, regression_loss=kind))(outputs)
    np.testing.assert_allclose(total, np.abs(error).sum() if kind == "l1" else np.square(error).sum(), rtol=1e-6)
    assert float(count) == 2.0
    grad = jax.grad(lambda o: losses.masked_loss(task, o, labels, regression_loss=kind)[0])(outputs)
    assert np.isfinite(grad).all() and grad[2, 0] == 0.0


def test_multilabel_loss_is_the_mean_binary_cross_entropy_with_positive_weights():
    task = Task("topics", ("a", "b"), kind=MULTILABEL)
    outputs = np.array([[2.0, -1.0], [0.5, 0.5], [9.0, 9.0]], np.float32)
    labels = np.array([[1, 0], [0, 1], [-1, -1]], np.int32)
    p = 1 / (1 + np.exp(-outputs[:2]))
    bce = -np.where(labels[:2] == 1, np.log(p), np.log(1 - p))
    total, count = quick_jit(lambda o: losses.masked_loss(task, o, labels))(outputs)
    np.testing.assert_allclose(total, bce.mean(1).sum(), rtol=1e-5)
    assert float(count) == 2.0
    weighted, _ = quick_jit(lambda o: losses.masked_loss(task, o, labels, np.array([3.0, 1.0], np.float32)))(outputs)
    np.testing.assert_allclose(weighted, (bce * np.where(labels[:2] == 1, [3.0, 1.0], 1.0)).mean(1).sum(), rtol=1e-5)
    # Class weights of a multi-label task weigh the positives by (negatives / positives) ** power.
    manifest = {"tasks": to_manifest([task]),
                "splits": {"train": {"class_counts": {"topics": {"a": 10, "b": 0}}, "labelled": {"topics": 40}}}}
    config = _config(class_weights="inverse_frequency")
    config.tasks = ("topics",)
    np.testing.assert_allclose(losses.class_weights(config, manifest)["topics"], [3.0, 1.0])


def test_uncertainty_weighting_objective_and_gradient():
    config = _config(loss_balancing="uncertainty")
    config.task_weights.sarcasm = 2.0
    s = np.array([0.5, -1.0], np.float32)  # config.tasks order: sentiment, sarcasm
    mean_losses = {"sentiment": 1.2, "sarcasm": 0.3}

    def objective(log_variance):
        params = {losses.TASK_LOG_VARIANCE: log_variance}
        weights = losses.task_weights(params, config)
        reg, metrics = losses.regulariser(params, config)
        return sum(weights[t] * mean_losses[t] for t in mean_losses) + reg, metrics

    (value, metrics), grad = quick_jit(jax.value_and_grad(objective, has_aux=True))(s)
    # Kendall et al.: sum_t w_t (exp(-s_t) L_t + s_t / 2), here with no tower kernels to tie.
    expected = (np.exp(-0.5) * 1.2 + 0.25) + 2.0 * (np.exp(1.0) * 0.3 - 0.5)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, [-np.exp(-0.5) * 1.2 + 0.5, 2.0 * (-np.exp(1.0) * 0.3 + 0.5)], rtol=1e-6)
    assert float(metrics["log_variance/sarcasm"]) == -1.0
    static = losses.task_weights({}, _config())
    assert static == {"sentiment": 1.0, "sarcasm": 1.0}


@pytest.mark.parametrize("key, value", [("loss_balancing", "kendall"), ("class_weights", "balanced")])
def test_unknown_balancing_is_a_config_error_listing_the_choices(key, value):
    with pytest.raises(ConfigError, match=f"config.{key}='{value}' is not one of"):
        configuration.validate(_config(**{key: value}))
