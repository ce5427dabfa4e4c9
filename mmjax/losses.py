"""Per-task masked losses, combined into the training objective.

The objective is ``sum_t c_t(params) * w_t * L_t + R(params)``: ``L_t`` the mean (class-weighted)
cross-entropy of task t over the global batch, ``w_t`` the static ``config.task_weights``,
``c_t`` the balancing factor of ``config.loss_balancing`` and ``R`` the regularisers (soft
sharing's tie penalty, the uncertainty terms). ``R`` depends on the parameters only, so it is
added once per step, outside the micro-batches of gradient accumulation.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmjax.models import towers
from mmjax.models.model import TASK_LOG_VARIANCE
from mmjax.tasks import get_task


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


def label_counts(labels: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Labelled positions per task of a (global) batch: the denominators of the task means."""
    return {task: jnp.sum(values >= 0).astype(jnp.float32) for task, values in labels.items()}


def task_loss(logits: Mapping[str, jax.Array], labels: Mapping[str, jax.Array],
              counts: Mapping[str, jax.Array], weights: Mapping[str, jax.Array | float],
              class_weights: Mapping[str, np.ndarray] | None = None):
    """sum_t w_t * loss_sum_t / count_t, with ``counts`` over the whole global batch.

    Dividing by whole-batch counts (not this slice's) makes the loss of a batch equal the sum of
    its micro-batches' losses, so gradient accumulation is exact, and the value independent of
    sharding. ``weights`` as from ``task_weights``; ``class_weights`` as from ``class_weights``.
    Returns (loss, {task: (loss_sum, count)}).
    """
    class_weights = class_weights or {}
    per_task = {t: masked_cross_entropy(logits[t], labels[t], class_weights.get(t)) for t in logits}
    loss = sum(weights.get(t, 1.0) * s / jnp.maximum(counts[t], 1.0) for t, (s, _) in per_task.items())
    return loss, per_task


# Uncertainty weighting (Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
# Losses", CVPR 2018, eq. 10, classification form): with s_t = log sigma_t^2 learned per task,
# L = sum_t exp(-s_t) L_t + s_t / 2  (1/sigma^2 L_t + log sigma). Large s_t down-weights a noisy
# task; the s_t / 2 term stops s_t from growing without bound.
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


# config.class_weights -> exponent of the inverse class frequency (None: unweighted).
# "inverse_frequency" is scikit-learn's "balanced" weighting, n / (classes * n_c).
CLASS_WEIGHTING = {"none": None, "inverse_frequency": 1.0, "sqrt_inverse": 0.5}


def class_weights(config, manifest: Mapping) -> dict[str, np.ndarray] | None:
    """task -> float32 [classes] from the training split's class counts in ``manifest``, or None
    for ``config.class_weights="none"``."""
    power = CLASS_WEIGHTING[config.class_weights]
    if power is None:
        return None
    train = manifest["splits"]["train"]["class_counts"]
    return {t: _balanced([train[t].get(label, 0) for label in get_task(t, manifest).labels], power)
            for t in config.tasks}
