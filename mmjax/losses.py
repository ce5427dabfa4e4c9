"""Per-task masked losses, combined into the training objective."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import optax

from mmjax.models import towers


def masked_cross_entropy(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Summed softmax cross-entropy over labelled positions, and their count.

    logits: float [..., classes]; labels: int32 [...], negative where unlabelled.
    """
    valid = labels >= 0
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
    return jnp.sum(jnp.where(valid, losses, 0.0)), jnp.sum(valid).astype(jnp.float32)


def label_counts(labels: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """Labelled positions per task of a (global) batch: the denominators of the task means."""
    return {task: jnp.sum(values >= 0).astype(jnp.float32) for task, values in labels.items()}


def task_loss(logits: Mapping[str, jax.Array], labels: Mapping[str, jax.Array],
              counts: Mapping[str, jax.Array], weights: Mapping[str, float]):
    """sum_t w_t * loss_sum_t / count_t, with ``counts`` over the whole global batch.

    Dividing by whole-batch counts (not this slice's) makes the loss of a batch equal the sum of
    its micro-batches' losses, so gradient accumulation is exact, and the value independent of
    sharding. Returns (loss, {task: (loss_sum, count)}).
    """
    per_task = {t: masked_cross_entropy(logits[t], labels[t]) for t in logits}
    loss = sum(weights.get(t, 1.0) * s / jnp.maximum(counts[t], 1.0) for t, (s, _) in per_task.items())
    return loss, per_task


def regulariser(params, config) -> tuple[jax.Array, jax.Array]:
    """(weighted regulariser, raw tie penalty): soft sharing's pull of towers to their mean."""
    tie = towers.tie_penalty(params)
    return config.model.tie_weight * tie, tie
