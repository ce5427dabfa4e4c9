"""The training loop: mesh, state init or resume, periodic validation, checkpoints and logging."""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import jax
from jax.experimental import multihost_utils
import numpy as np
import tensorboardX
import tqdm

from mmjax import checkpointing, configuration, evaluation, optim, sharding, train_step
from mmjax.data import pipeline, records
from mmjax.data.corpora import synthetic
from mmjax.errors import ConfigError, MmjaxError, RecordError
from mmjax.models import model as model_lib
from mmjax.state import abstract_state_and_shardings, create_state


def load_or_prepare_records(config) -> dict:
    """The manifest of ``config.data.dir``. For ``data.corpus="synthetic"`` the records are
    (re)generated there when missing or made by another generator version, seed or size:
    they are a pure function of those, so nothing is lost."""
    path = config.data.dir
    if config.data.corpus == "synthetic":
        wanted = synthetic.spec(config.data.synthetic_dialogues, config.data.synthetic_seed)
        if jax.process_index() == 0:
            existing = _existing_manifest(path)
            # Never overwrite another corpus: the corpus check below then names the mismatch.
            if existing is None or (existing["corpus"] == "synthetic" and existing.get("synthetic") != wanted):
                print(f"preparing the synthetic corpus {wanted} in {path}", file=sys.stderr)
                synthetic.write(path, wanted["dialogues"], wanted["seed"])
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("synthetic records")
    manifest = records.load_manifest(path)
    if manifest["corpus"] != config.data.corpus:
        raise ConfigError(f"config.data.corpus={config.data.corpus!r} but config.data.dir={path!r} holds "
                          f"the {manifest['corpus']!r} corpus")
    missing = [t for t in config.tasks if t not in manifest["tasks"]]
    if missing:
        raise ConfigError(f"config.tasks includes {missing}, which the corpus at {path!r} does not "
                          f"label (it has {list(manifest['tasks'])})")
    return manifest


def _existing_manifest(path: str) -> dict | None:
    if not os.path.exists(os.path.join(path, records.MANIFEST)):
        return None
    try:
        return records.load_manifest(path)
    except RecordError:  # another schema version: the synthetic corpus is simply rebuilt
        return None


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


def setup(config, devices=None) -> Setup:
    """Validates ``config``, prepares its records and builds the mesh (over ``devices``, default
    all), model, optimizer and the abstract train state with its shardings."""
    configuration.validate(config, jax.process_count())
    manifest = load_or_prepare_records(config)
    mesh = sharding.make_mesh(config, devices)
    dp = sharding.data_parallel_size(mesh)
    for key in ("batch_size", "eval_batch_size"):
        if config[key] % dp:
            raise ConfigError(f"config.{key}={config[key]} is not divisible by the {dp} data-parallel "
                              "devices (mesh data x fsdp)")
    rules = sharding.logical_rules(config)
    model = model_lib.build_model(config, manifest)
    tx = optim.make_optimizer(config)
    shapes = pipeline.shapes_from_config(config, manifest)
    batch_shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct((config.batch_size,) + x.shape, x.dtype),
                                pipeline.empty_example(shapes))
    abstract, shardings = abstract_state_and_shardings(model, tx, batch_shapes, mesh, rules)
    return Setup(config, manifest, mesh, rules, model, tx, batch_shapes, abstract, shardings)


def make_workdir(workdir: str) -> None:
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as e:
        raise MmjaxError(f"cannot create workdir {workdir!r}: {e.strerror}") from e
    if not os.access(workdir, os.W_OK):
        raise MmjaxError(f"workdir {workdir!r} is not writable")


class _MetricAccumulator:
    """Sums per-step metric dicts on device; fetched once per logging interval."""

    def __init__(self):
        self.total, self.steps, self.started = None, 0, time.perf_counter()

    def add(self, metrics):
        self.total = metrics if self.total is None else jax.tree.map(np.add, self.total, metrics)
        self.steps += 1

    def summary(self, tasks) -> dict[str, float]:
        total = jax.device_get(self.total)
        out = {"loss": float(total["loss"]) / self.steps,
               "grad_norm": float(total["grad_norm"]) / self.steps,
               "tie_penalty": float(total["tie_penalty"]) / self.steps,
               "steps_per_second": self.steps / (time.perf_counter() - self.started)}
        for task in tasks:
            count = max(float(total[f"{task}/count"]), 1.0)
            out[f"{task}/loss"] = float(total[f"{task}/loss_sum"]) / count
            out[f"{task}/accuracy"] = float(total[f"{task}/correct"]) / count
        self.__init__()
        return out


def _check_finite(summary: dict, step: int) -> None:
    """NaN guard: stops before a non-finite state can be checkpointed."""
    bad = [k for k, v in summary.items() if not np.isfinite(v)]
    if bad:
        raise FloatingPointError(f"non-finite training metrics {bad} in the steps up to {step}; "
                                 "no checkpoint was written for them")


def _log_scalars(writer, prefix: str, values: dict, step: int) -> None:
    if writer is not None:
        for key, value in values.items():
            writer.add_scalar(f"{prefix}/{key}", value, step)
        writer.flush()


def train_and_evaluate(config, workdir: str):
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint; returns the state."""
    make_workdir(workdir)
    s = setup(config)
    is_main = jax.process_index() == 0
    if is_main:
        with open(os.path.join(workdir, "config.json"), "w", encoding="utf-8") as f:
            f.write(config.to_json_best_effort(indent=1))
    data = iter(pipeline.train_dataset(config, s.manifest, jax.process_index(), jax.process_count()))
    mngr = checkpointing.manager(workdir, config.max_checkpoints_to_keep)
    start = mngr.latest_step()
    if start is None:
        state, start = create_state(config.seed, s.model, s.tx, s.batch_shapes, s.mesh, s.rules), 0
    else:
        if is_main:
            print(f"resuming {workdir} from its checkpoint at step {start}", file=sys.stderr)
        state = checkpointing.restore(mngr, start, s.abstract_state, data)
    batch_sharding = sharding.batch_sharding(s.mesh)
    step_fn = jax.jit(train_step.make_train_step(s.model, s.tx, config), donate_argnums=0,
                      in_shardings=(s.state_shardings, batch_sharding), out_shardings=(s.state_shardings, None))
    eval_fn = jax.jit(train_step.make_eval_step(s.model, config),
                      in_shardings=(s.state_shardings.params, batch_sharding))
    writer = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard")) if is_main else None
    accumulator = _MetricAccumulator()
    progress = tqdm.tqdm(total=config.num_train_steps, initial=start, disable=not is_main,
                         desc="train", unit="step", dynamic_ncols=True)
    for step in range(start + 1, config.num_train_steps + 1):
        batch = sharding.global_batch(next(data), s.mesh)
        with sharding.activate(s.mesh, s.rules):
            state, metrics = step_fn(state, batch)
        accumulator.add(metrics)
        progress.update(1)
        if step % config.log_every_steps == 0 or step == config.num_train_steps:
            summary = accumulator.summary(config.tasks)
            progress.set_postfix(loss=f"{summary['loss']:.4f}")
            _check_finite(summary, step)
            _log_scalars(writer, "train", summary, step)
        if step % config.eval_every_steps == 0 or step == config.num_train_steps:
            report = evaluation.run(eval_fn, state.params, config, s.manifest, "validation", s.mesh, s.rules)
            _log_scalars(writer, "validation", {f"{t}/{k}": r[k] for t, r in report.items()
                                                 for k in ("accuracy", "macro_f1", "weighted_f1", "loss")}, step)
            if is_main:
                progress.write(evaluation.format_table(report, f"validation at step {step}"))
        if step % config.checkpoint_every_steps == 0 or step == config.num_train_steps:
            checkpointing.save(mngr, step, state, data)
    progress.close()
    mngr.wait_until_finished()
    mngr.close()
    if writer is not None:
        writer.close()
    return state
