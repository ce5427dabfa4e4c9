"""Everything training, evaluation and prediction derive from a config and its records'
manifest: mesh, model, optimizer, abstract train state with its shardings, and the compiled
steps. No side effects: nothing is written, no corpus prepared (``mmjax.prepared_records``)."""

from __future__ import annotations

import dataclasses
import logging
import time

import jax

from mmjax import configuration, ensemble, flop_count, inputs, losses, optim, prepared_records, sharding, train_step
from mmjax.data import pipeline
from mmjax.errors import ConfigError
from mmjax.models import model as model_lib
from mmjax.state import abstract_state_and_shardings, create_state

_log = logging.getLogger(__name__)


@dataclasses.dataclass
class Setup:
    """Everything both training and evaluation derive from the config."""

    config: object
    manifest: dict
    mesh: jax.sharding.Mesh
    rules: tuple
    model: object
    tx: object
    batch_shapes: object  # jax.ShapeDtypeStruct tree of one global training batch
    abstract_state: object
    state_shardings: object


def build(config, devices=None, manifest=None, training: bool = True) -> Setup:
    """Validates ``config`` and builds the mesh (over ``devices``, default all), model, optimizer
    and the abstract train state with its shardings for the records of ``manifest`` (None: those
    in ``config.data.dir``, read as they are). ``training=False`` (evaluation, prediction) skips
    the checks that only the train step needs."""
    configuration.validate(config, jax.process_count())
    manifest = prepared_records.load(config) if manifest is None else manifest
    configuration.check_tasks(config, manifest)
    mesh = sharding.make_mesh(config, devices)
    dp = sharding.data_parallel_size(mesh)
    if config.eval_batch_size % dp:
        raise ConfigError(f"config.eval_batch_size={config.eval_batch_size} is not divisible by the {dp} "
                          "data-parallel devices (mesh data x fsdp)")
    if training and config.batch_size % (dp * config.grad_accum_steps):
        raise ConfigError(f"config.batch_size={config.batch_size} is not divisible by the {dp} data-parallel "
                          f"devices (mesh data x fsdp) x config.grad_accum_steps={config.grad_accum_steps}")
    rules = sharding.logical_rules(config)
    model = model_lib.build_model(config, manifest)
    tx = optim.make_optimizer(config)
    shapes = inputs.shapes(config, manifest)
    groups = inputs.text_packing(config, config.grad_accum_steps, mesh, hosts=1)  # the global batch's
    batch_shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype),
                                pipeline.largest_batch(shapes, config.batch_size, groups))
    abstract, shardings = abstract_state_and_shardings(model, tx, batch_shapes, mesh, rules,
                                                       ema=train_step.ema_decay(config) > 0)
    return Setup(config, manifest, mesh, rules, model, tx, batch_shapes, abstract, shardings)


def initial_state(s: Setup):
    """A fresh TrainState in its shardings: random init, except a pretrained text encoder's
    weights (``config.model.text_encoder="pretrained"``), loaded before the optimizer state."""
    c = s.config
    return create_state(c.seed, s.model, s.tx, s.batch_shapes, s.mesh, s.rules, model_lib.pretrained_params(c),
                        ema=s.abstract_state.ema_params is not None, shardings=s.state_shardings)


def compile_train_step(s: Setup, config):
    """Ahead-of-time compiled train step (state donated), its matmul FLOPs (``flop_count``) and
    XLA's memory figures on the largest batch shapes (``s.batch_shapes``). The step compiles
    again, once, for each other batch shape it meets (``data.pack_text``: a few counts of packed
    rows)."""
    batch_sharding = sharding.batch_sharding(s.mesh)
    step_fn = train_step.make_train_step(s.model, s.tx, config, losses.class_weights(config, s.manifest))
    step = jax.jit(step_fn, donate_argnums=0,
                   in_shardings=(s.state_shardings, batch_sharding), out_shardings=(s.state_shardings, None))

    def compile_for(batch):
        batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=batch_sharding), batch)
        with sharding.activate(s.mesh, s.rules):
            traced = step.trace(s.abstract_state, batch)
            compiled = traced.lower().compile()
        return compiled, flop_count.matmul_flops(traced.jaxpr)

    compiled, flops = compile_for(s.batch_shapes)
    stats = {"flops": flops}
    memory = compiled.memory_analysis()
    if memory is not None:
        stats["memory_bytes"] = {k: int(getattr(memory, f"{k}_size_in_bytes")) for k in
                                 ("argument", "output", "temp", "alias", "generated_code")
                                 if hasattr(memory, f"{k}_size_in_bytes")}
    return CompiledPerShape(s.batch_shapes, (compiled, flops), compile_for), stats


class CompiledPerShape:
    """Calls the executable compiled for the shapes of its arguments' batch, compiling one the first
    time a batch of new shapes comes (logged: compiling takes seconds to minutes).

    ``compile_for(batch)`` -> (executable, matmul FLOPs per step); ``first`` is that of ``batch_shapes``.
    """

    def __init__(self, batch_shapes, first, compile_for):
        self._compile_for, self._compiled = compile_for, {self._key(batch_shapes): first}

    @staticmethod
    def _key(batch) -> tuple:
        return tuple(x.shape for x in jax.tree.leaves(batch))

    def _get(self, batch):
        key = self._key(batch)
        if key not in self._compiled:
            start = time.perf_counter()
            self._compiled[key] = self._compile_for(batch)
            if jax.process_index() == 0:
                _log.info(f"compiled the train step for another batch shape ({len(self._compiled)} so far) "
                          f"in {time.perf_counter() - start:.1f} s")
        return self._compiled[key]

    def __call__(self, state, batch):
        return self.executable(batch)(state, batch)

    def executable(self, batch):
        """The compiled step for ``batch``'s shapes (``as_text()``: its HLO, for profiles)."""
        return self._get(batch)[0]

    def flops(self, batch) -> float:
        """Matmul FLOPs of one step on ``batch``'s shapes (``flop_count.matmul_flops``)."""
        return self._get(batch)[1]


def _params_shardings(s: Setup, members: int):
    return ensemble.stacked_shardings(s.state_shardings.params) if members else s.state_shardings.params


def jit_eval_step(s: Setup, members: int = 0):
    """The jitted eval step: (params in their shardings, global batch) -> metric sums and rows;
    with ``members``, (``ensemble.stack``ed params, global batch) -> the ensemble's.

    Outputs are replicated, so every host can read the per-row outputs of the whole batch.
    """
    return jax.jit(train_step.make_eval_step(s.model, losses.regression_loss(s.config), members),
                   in_shardings=(_params_shardings(s, members), sharding.batch_sharding(s.mesh)),
                   out_shardings=sharding.replicated(s.mesh))


def jit_predict_step(s: Setup, members: int = 0):
    """The jitted predict step: (params, global batch) -> replicated probabilities or values;
    with ``members``, of the ensemble of the ``ensemble.stack``ed params."""
    return jax.jit(train_step.make_predict_step(s.model, members),
                   in_shardings=(_params_shardings(s, members), sharding.batch_sharding(s.mesh)),
                   out_shardings=sharding.replicated(s.mesh))


def format_stats(stats: dict) -> str:
    memory = ", ".join(f"{k} {v / 2**20:.1f} MiB" for k, v in stats.get("memory_bytes", {}).items())
    flops = f"{stats['flops'] / 1e9:.2f} matmul GFLOP" if stats.get("flops") else "FLOPs unknown"
    return f"compiled train step: {flops} per step; memory per device: {memory or 'unknown'}"
