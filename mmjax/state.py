"""TrainState pytree, created directly with its shardings from abstract shapes."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from mmjax import sharding


class TrainState(struct.PyTreeNode):
    step: jax.Array
    params: Any
    opt_state: Any


def _create(rng, model: nn.Module, tx: optax.GradientTransformation, batch_shapes) -> TrainState:
    """TrainState with logically boxed parameters (boxes carry the axis names)."""
    example = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), batch_shapes)
    params = model.init({"params": rng}, example, train=False)["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def abstract_state_and_shardings(model, tx, batch_shapes, mesh, rules):
    """(abstract unboxed TrainState with shardings, its NamedShardings), without allocating.

    batch_shapes: tree of jax.ShapeDtypeStruct of one global batch.
    """
    with sharding.activate(mesh, rules):
        boxed = jax.eval_shape(lambda: _create(jax.random.key(0), model, tx, batch_shapes))
    shardings = sharding.tree_shardings(boxed, mesh, rules)
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                            nn.meta.unbox(boxed), shardings)
    return abstract, shardings


def create_state(seed: int, model, tx, batch_shapes, mesh, rules) -> TrainState:
    """Initialises the TrainState directly into its shardings (never on one device first)."""
    _, shardings = abstract_state_and_shardings(model, tx, batch_shapes, mesh, rules)
    init = jax.jit(lambda rng: nn.meta.unbox(_create(rng, model, tx, batch_shapes)),
                   out_shardings=shardings)
    with sharding.activate(mesh, rules):
        return init(jax.random.key(seed))
