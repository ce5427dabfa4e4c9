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
    # config.ema_decay > 0: an exponential moving average of params, which validation, evaluation
    # and prediction use; None (an empty subtree) otherwise.
    ema_params: Any = None

    def eval_params(self):
        """The parameters a model is evaluated with: the moving average when there is one."""
        return self.params if self.ema_params is None else self.ema_params


def _create(rng, model: nn.Module, tx: optax.GradientTransformation, batch_shapes, loaded=None,
            ema: bool = False) -> TrainState:
    """TrainState with logically boxed parameters (boxes carry the axis names).

    loaded: top-level params subtree name -> arrays replacing that subtree's random init; they
    are in place before the optimizer state is initialised from the params. ema: the state
    holds a moving average of the params, starting from them.
    """
    example = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), batch_shapes)
    params = model.init({"params": rng}, example, train=False)["params"]
    if loaded:
        params = {**params, **{name: _replace_values(params[name], values, name) for name, values in loaded.items()}}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      ema_params=params if ema else None)


def _replace_values(boxed, values, name: str):
    """``boxed`` (a tree of nn.Partitioned) with ``values`` inside its boxes; same tree and shapes."""
    is_box = lambda x: isinstance(x, nn.Partitioned)  # noqa: E731
    if jax.tree.structure(boxed, is_leaf=is_box) != jax.tree.structure(values):
        raise ValueError(f"loaded params[{name!r}] do not have the model's parameter tree")

    def replace(path, box, value):
        if box.value.shape != value.shape:
            raise ValueError(f"loaded params[{name!r}]{jax.tree_util.keystr(path)} has shape {value.shape}, "
                             f"the model's has {box.value.shape}")
        return box.replace_boxed(value.astype(box.value.dtype))
    return jax.tree_util.tree_map_with_path(replace, boxed, values, is_leaf=is_box)


def abstract_state_and_shardings(model, tx, batch_shapes, mesh, rules, ema: bool = False):
    """(abstract unboxed TrainState with shardings, its NamedShardings), without allocating.

    batch_shapes: tree of jax.ShapeDtypeStruct of one global batch; ema: with ``ema_params``.
    """
    with sharding.activate(mesh, rules):
        boxed = jax.eval_shape(lambda: _create(jax.random.key(0), model, tx, batch_shapes, ema=ema))
    shardings = sharding.tree_shardings(boxed, mesh, rules)
    abstract = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                            nn.meta.unbox(boxed), shardings)
    return abstract, shardings


def create_state(seed: int, model, tx, batch_shapes, mesh, rules, loaded=None, ema: bool = False,
                 shardings=None) -> TrainState:
    """Initialises the TrainState directly into its shardings (never on one device first).

    loaded: optional top-level params subtree name -> host (numpy) arrays, e.g. a pretrained
    encoder; each array goes straight to its parameter's sharding and replaces the random init.
    ema: with ``ema_params`` (equal to the initial params). shardings: the state's, when the
    caller has them from ``abstract_state_and_shardings`` (saves tracing the model again).
    """
    if shardings is None:
        _, shardings = abstract_state_and_shardings(model, tx, batch_shapes, mesh, rules, ema)
    loaded = {name: jax.device_put(values, shardings.params[name]) for name, values in (loaded or {}).items()}
    init = jax.jit(lambda rng, loaded: nn.meta.unbox(_create(rng, model, tx, batch_shapes, loaded, ema)),
                   out_shardings=shardings, donate_argnums=1)
    with sharding.activate(mesh, rules):
        return init(jax.random.key(seed), loaded)
