"""Ensembles of trained runs: one model applied with several members' parameters in one step.

The members are runs of one configuration (seeds, typically). Their parameters are stacked along a
new leading axis, the model is applied to each member under ``jax.vmap`` inside the one jitted
step, and each task's outputs are combined into the outputs of one model (``combine``): class and
label probabilities averaged, regression values averaged. Everything downstream (metrics, losses,
breakdowns, prediction) reads them as any model's outputs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from mmjax.tasks import CLASSIFICATION, MULTILABEL, Task


def combine(task: Task, outputs: jax.Array) -> jax.Array:
    """[members, ..., task.outputs] -> [..., task.outputs], the outputs of the averaged model:
    classification, the log of the mean class probabilities (logits whose softmax is that mean);
    multi-label, the logit of each label's mean probability; regression, the mean of the members'
    values (each clipped to the task's range first, as ``Task.from_unit`` clips one model's)."""
    outputs = outputs.astype(jnp.float32)
    members = outputs.shape[0]
    if task.kind == CLASSIFICATION:
        return jax.nn.logsumexp(jax.nn.log_softmax(outputs, -1), axis=0) - jnp.log(members)
    if task.kind == MULTILABEL:  # log(mean p) - log(mean (1 - p)), in log space for saturated logits
        return jax.nn.logsumexp(jax.nn.log_sigmoid(outputs), axis=0) - jax.nn.logsumexp(
            jax.nn.log_sigmoid(-outputs), axis=0)
    return jnp.mean(jnp.clip(outputs, -1.0, 1.0), axis=0)


def apply(model, params, batch, members: int = 0) -> dict[str, jax.Array]:
    """The model's evaluation outputs (task -> [B, T, outputs]) for ``params``; with ``members``
    > 0, ``params`` are ``stack``ed members' and the outputs are their ``combine``d ones."""
    if not members:
        return model.apply({"params": params}, batch, train=False)
    outputs = jax.vmap(lambda p: model.apply({"params": p}, batch, train=False))(params)
    tasks = {t.name: t for t in model.tasks}
    return {name: combine(tasks[name], value) for name, value in outputs.items()}


# AffectModel fields (and n-gram settings) that act only in training, or only on the initial
# parameters: members may differ in them.
_TRAINING_ONLY = {"dropout", "freeze_text", "task_uncertainty", "parent", "name"}
_NGRAM_TRAINING_ONLY = {"ngram_dropout", "ngram_init_scale"}


def evaluation_function(model) -> dict:
    """What fixes the function an ``AffectModel`` computes from its parameters at evaluation: its
    fields but those in ``_TRAINING_ONLY`` (members must agree on these)."""
    fields = {f.name: getattr(model, f.name) for f in dataclasses.fields(model) if f.name not in _TRAINING_ONLY}
    if fields["ngram"] is not None:
        fields["ngram"] = {k: v for k, v in fields["ngram"].items() if k not in _NGRAM_TRAINING_ONLY}
    return fields


def check_members(models: Sequence, params_shapes: Sequence, names: Sequence[str]) -> None:
    """Raises ValueError naming the first member whose model computes another function than the
    first member's (``evaluation_function``) or whose parameters differ in names or shapes."""
    first = evaluation_function(models[0])
    shapes = lambda tree: jax.tree.map(lambda x: tuple(x.shape), tree)  # noqa: E731
    for model, params, name in zip(models[1:], params_shapes[1:], names[1:]):
        other = evaluation_function(model)
        differ = sorted(k for k in first if first[k] != other[k])
        if differ:
            raise ValueError(f"{name} differs from {names[0]} in {', '.join(differ)}: an ensemble's members "
                             "share one model")
        if shapes(params) != shapes(params_shapes[0]):
            raise ValueError(f"{name} has other parameters (names or shapes) than {names[0]}")


def stack(members: Sequence, shardings) -> object:
    """One params tree whose every leaf is the members' leaves stacked, [members, ...], laid out
    by ``stacked_shardings(shardings)`` (``shardings``: one member's)."""
    if len(members) < 2:
        raise ValueError(f"an ensemble needs at least two members, got {len(members)}")
    return jax.jit(_stacked, out_shardings=stacked_shardings(shardings))(*members)


def _stacked(*trees):  # module-level, so JAX's caches reuse its compilation across calls
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def stacked_shardings(shardings):
    """The shardings of ``stack``ed params: each member's layout, the members' axis unsharded."""
    return jax.tree.map(lambda s: NamedSharding(s.mesh, PartitionSpec(None, *s.spec)), shardings)
