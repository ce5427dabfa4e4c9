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


def objective(logits: Mapping[str, jax.Array], labels: Mapping[str, jax.Array], params, config):
    """Weighted sum of per-task mean losses plus the soft-sharing tie regulariser.

    Means are over the *global* batch (sums and counts), so the value does not depend on how
    the batch is sharded. Returns (loss, {task: (loss_sum, count)}, tie_penalty).
    """
    per_task = {t: masked_cross_entropy(logits[t], labels[t]) for t in logits}
    loss = sum(config.task_weights.get(t, 1.0) * s / jnp.maximum(n, 1.0) for t, (s, n) in per_task.items())
    tie = towers.tie_penalty(params)
    return loss + config.model.tie_weight * tie, per_task, tie
