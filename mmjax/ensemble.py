"""Ensembles of trained runs: one model applied with several members' parameters in one step.

The members are runs of one configuration (seeds, typically). Their parameters are stacked along a
new leading axis, the model is applied to each member under ``jax.vmap`` inside the one jitted
step, and each task's outputs are combined into the outputs of one model (``combine``): class and
label probabilities averaged, regression values averaged. Everything downstream (metrics, losses,
breakdowns, prediction) reads them as any model's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from mmjax.tasks import CLASSIFICATION, MULTILABEL, Task


def combine(task: Task, outputs: jax.Array) -> jax.Array:
    """[members, ..., task.outputs] -> [..., task.outputs], the outputs of the averaged model:
    classification, the log of the mean class probabilities (logits whose softmax is that mean);
    multi-label, the logit of each label's mean probability; regression, the mean value."""
    outputs = outputs.astype(jnp.float32)
    members = outputs.shape[0]
    if task.kind == CLASSIFICATION:
        return jax.nn.logsumexp(jax.nn.log_softmax(outputs, -1), axis=0) - jnp.log(members)
    if task.kind == MULTILABEL:  # log(mean p) - log(mean (1 - p)), in log space for saturated logits
        return jax.nn.logsumexp(jax.nn.log_sigmoid(outputs), axis=0) - jax.nn.logsumexp(
            jax.nn.log_sigmoid(-outputs), axis=0)
    return jnp.mean(outputs, axis=0)


def apply(model, params, batch, members: int = 0) -> dict[str, jax.Array]:
    """The model's evaluation outputs (task -> [B, T, outputs]) for ``params``; with ``members``
    > 0, ``params`` are ``stack``ed members' and the outputs are their ``combine``d ones."""
    if not members:
        return model.apply({"params": params}, batch, train=False)
    outputs = jax.vmap(lambda p: model.apply({"params": p}, batch, train=False))(params)
    tasks = {t.name: t for t in model.tasks}
    return {name: combine(tasks[name], value) for name, value in outputs.items()}


def stack(members: Sequence, shardings) -> object:
    """One params tree whose every leaf is the members' leaves stacked, [members, ...], laid out
    by ``stacked_shardings(shardings)`` (``shardings``: one member's)."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    stacked = lambda *trees: jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)  # noqa: E731
    return jax.jit(stacked, out_shardings=stacked_shardings(shardings))(*members)


def stacked_shardings(shardings):
    """The shardings of ``stack``ed params: each member's layout, the members' axis unsharded."""
    return jax.tree.map(lambda s: NamedSharding(s.mesh, PartitionSpec(None, *s.spec)), shardings)
