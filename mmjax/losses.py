"""Per-task masked losses, combined into the training objective.

The objective is ``sum_t c_t(params) * w_t * L_t + R(params)``: ``L_t`` the mean loss of task t
over the labelled utterances of the global batch (``masked_loss``: by the task's kind,
class-weighted cross-entropy, L1 or squared error, or sigmoid cross-entropy), ``w_t`` the
static ``config.task_weights``, ``c_t`` the balancing factor of ``config.loss_balancing`` and
``R`` the regularisers (soft sharing's tie penalty, the uncertainty terms). ``R`` depends on
the parameters only, so it is added once per step, outside the micro-batches of gradient
accumulation.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmjax.models import towers
from mmjax.models.model import TASK_LOG_VARIANCE
from mmjax.tasks import CLASSIFICATION, MULTILABEL, REGRESSION, Task, get_task

REGRESSION_LOSSES = ("l1", "mse")  # config.regression_loss


def regression_loss(config) -> str:
    """``config.regression_loss`` (runs saved before it existed trained no regression task: "l1")."""
    return config.get("regression_loss", "l1")


def masked_cross_entropy(logits: jax.Array, labels: jax.Array,
                         class_weights: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Summed softmax cross-entropy over labelled positions, and their count.

    logits: float [..., classes]; labels: int32 [...], negative where unlabelled;
    class_weights: optional float [classes], each position's loss is scaled by its label's
    weight. The count stays the number of labelled positions: the weights are normalised to
    average 1 over the training labels (``class_weights``), so the loss keeps its scale.
    """
    valid = labels >= 0
    safe_labels = jnp.where(valid, labels, 0)
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, safe_labels)
    if class_weights is not None:
        losses = losses * jnp.asarray(class_weights, losses.dtype)[safe_labels]
    return jnp.sum(jnp.where(valid, losses, 0.0)), jnp.sum(valid).astype(jnp.float32)


def masked_loss(task: Task, outputs: jax.Array, labels: jax.Array, class_weights: jax.Array | None = None,
                regression_loss: str = "l1") -> tuple[jax.Array, jax.Array]:
    """Summed loss of ``task`` over labelled positions, and their count.

    outputs: float [..., task.outputs]; labels: [..., *task.label_shape] as stored (``mmjax.tasks``).
    classification: ``masked_cross_entropy``. regression: the L1 or squared error
    (``regression_loss``) of the output against the label scaled to [-1, 1] over the task's
    range, so a task's loss has the same scale whatever its units. multilabel: the sigmoid
    cross-entropy averaged over the labels; ``class_weights`` [labels] scales the terms of the
    labels that apply (the positives).
    """
    if task.kind == CLASSIFICATION:
        return masked_cross_entropy(outputs, labels, class_weights)
    valid = task.is_labelled(labels)
    if task.kind == REGRESSION:
        error = outputs[..., 0] - task.to_unit(jnp.where(valid, labels, 0.0))  # no NaN anywhere: its gradient
        losses = jnp.abs(error) if regression_loss == "l1" else jnp.square(error)
    else:
        targets = (labels > 0).astype(outputs.dtype)
        per_label = optax.sigmoid_binary_cross_entropy(outputs, targets)
        if class_weights is not None:
            per_label = per_label * jnp.where(targets > 0, jnp.asarray(class_weights, per_label.dtype), 1.0)
        losses = per_label.mean(-1)
    return jnp.sum(jnp.where(valid, losses, 0.0)), jnp.sum(valid).astype(jnp.float32)


def label_counts(tasks: Mapping[str, Task], labels: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Labelled positions per task of a (global) batch: the denominators of the task means."""
    return {name: jnp.sum(tasks[name].is_labelled(values)).astype(jnp.float32) for name, values in labels.items()}


def task_loss(tasks: Mapping[str, Task], outputs: Mapping[str, jax.Array], labels: Mapping[str, jax.Array],
              counts: Mapping[str, jax.Array], weights: Mapping[str, jax.Array | float],
              class_weights: Mapping[str, np.ndarray] | None = None, regression_loss: str = "l1"):
    """sum_t w_t * loss_sum_t / count_t, with ``counts`` over the whole global batch.

    Dividing by whole-batch counts (not this slice's) makes the loss of a batch equal the sum of
    its micro-batches' losses, so gradient accumulation is exact, and the value independent of
    sharding. ``weights`` as from ``task_weights``; ``class_weights`` as from ``class_weights``.
    Returns (loss, {task: (loss_sum, count)}).
    """
    class_weights = class_weights or {}
    per_task = {t: masked_loss(tasks[t], outputs[t], labels[t], class_weights.get(t), regression_loss)
                for t in outputs}
    loss = sum(weights.get(t, 1.0) * s / jnp.maximum(counts[t], 1.0) for t, (s, _) in per_task.items())
    return loss, per_task


# Uncertainty weighting (Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
# Losses", CVPR 2018, eq. 10, classification form): with s_t = log sigma_t^2 learned per task,
# L = sum_t exp(-s_t) L_t + s_t / 2  (1/sigma^2 L_t + log sigma). Large s_t down-weights a noisy
# task; the s_t / 2 term stops s_t from growing without bound. Regression tasks take the same form
# (the paper's regression form halves the first term): on losses of one scale, see masked_loss.
def _static(params, config) -> tuple[dict, jax.Array]:
    del params
    return {t: config.task_weights.get(t, 1.0) for t in config.tasks}, jnp.zeros((), jnp.float32)


def _uncertainty(params, config) -> tuple[dict, jax.Array]:
    log_variance = params[TASK_LOG_VARIANCE]
    static, _ = _static(params, config)
    weights = {t: static[t] * jnp.exp(-log_variance[i]) for i, t in enumerate(config.tasks)}
    penalty = sum(static[t] * log_variance[i] / 2 for i, t in enumerate(config.tasks))
    return weights, penalty


# config.loss_balancing -> (params, config) -> ({task: weight of its mean loss}, parameter-only term).
LOSS_BALANCING = {"static": _static, "uncertainty": _uncertainty}


def task_weights(params, config) -> dict[str, jax.Array | float]:
    """Each task's weight in the objective: ``config.task_weights`` times, for uncertainty
    weighting, exp(-s_t) of the learned log-variance s_t."""
    return LOSS_BALANCING[config.loss_balancing](params, config)[0]


def regulariser(params, config) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(the parameter-only terms of the objective, metrics): soft sharing's weighted pull of the
    towers to their mean, and uncertainty weighting's sum_t w_t s_t / 2. Metrics: the raw tie
    penalty and, for uncertainty weighting, each task's log-variance."""
    tie = towers.tie_penalty(params)
    _, balancing = LOSS_BALANCING[config.loss_balancing](params, config)
    metrics = {"tie_penalty": tie}
    if TASK_LOG_VARIANCE in params:
        metrics.update({f"log_variance/{t}": params[TASK_LOG_VARIANCE][i] for i, t in enumerate(config.tasks)})
    return config.model.tie_weight * tie + balancing, metrics


def _balanced(counts: np.ndarray, power: float) -> np.ndarray:
    """Weights proportional to count^-power, averaging 1 over the training labels; a class with
    no training label gets the largest weight (it is rarer than any seen class)."""
    counts = np.asarray(counts, np.float64)
    seen = counts > 0
    if not seen.any():
        return np.ones(len(counts), np.float32)
    raw = np.where(seen, np.maximum(counts, 1.0) ** -power, 0.0)
    raw = raw / np.sum(counts * raw) * counts.sum()  # sum_c p_c w_c = 1
    return np.where(seen, raw, raw.max()).astype(np.float32)


def _positive_weights(positives: np.ndarray, labelled: int, power: float) -> np.ndarray:
    """Multi-label: each label's weight on its positive terms, (negatives / positives)^power
    (scikit-learn's "balanced" for power 1, as PyTorch's ``pos_weight``); 1 for a label that
    always or never applies in training."""
    positives = np.asarray(positives, np.float64)
    negatives = labelled - positives
    ratio = np.where((positives > 0) & (negatives > 0), negatives / np.maximum(positives, 1.0), 1.0)
    return (ratio ** power).astype(np.float32)


# config.class_weights -> exponent of the inverse class frequency (None: unweighted).
# "inverse_frequency" is scikit-learn's "balanced" weighting, n / (classes * n_c).
CLASS_WEIGHTING = {"none": None, "inverse_frequency": 1.0, "sqrt_inverse": 0.5}


def class_weights(config, manifest: Mapping) -> dict[str, np.ndarray] | None:
    """task -> float32 [classes] (classification) or [labels] (multi-label: the positives'
    weights) from the training split's label counts in ``manifest``; None for
    ``config.class_weights="none"``. Regression tasks have none."""
    power = CLASS_WEIGHTING[config.class_weights]
    if power is None:
        return None
    train = manifest["splits"]["train"]
    out = {}
    for name in config.tasks:
        task = get_task(name, manifest)
        counts = [train["class_counts"][name].get(label, 0) for label in task.labels]
        if task.kind == CLASSIFICATION:
            out[name] = _balanced(counts, power)
        elif task.kind == MULTILABEL:
            out[name] = _positive_weights(counts, train["labelled"][name], power)
    return out
