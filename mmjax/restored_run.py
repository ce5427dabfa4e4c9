"""A trained run restored for evaluation or prediction, onto whatever devices are present.

The config is the one the workdir recorded (``config.json``) unless one is given. Its mesh is
kept when it fits the devices present; otherwise (a checkpoint written on a larger mesh, read on
one CPU) the parameters are restored data-parallel over all devices: Orbax reshards on read and
evaluation results do not depend on the mesh. Only the parameters are restored (their moving
average, with ``config.ema_decay``), not the optimizer state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Iterator, Mapping

import jax
from etils import epath

from mmjax import checkpointing, ensemble, prepared_records, saved_run, setup as setup_lib, sharding
from mmjax.errors import ConfigError, MmjaxError

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)

SEED = "{seed}"  # in a workdir template, replaced by each seed (seed_workdirs)
_DATA_PARALLEL = {"data": -1, "fsdp": 1, "model": 1}
# Manifest sections that must match between the training records and the records evaluated.
_MUST_MATCH = ("tasks", "features", "text", "text_states")
# The config keys that decide the parameters a run's checkpoints hold (prefixes of dotted keys).
_PARAMETER_KEYS = ("model.", "tasks", "ema_decay", "loss_balancing")


@dataclasses.dataclass
class RestoredRun:
    """A run's parameters at the step(s) read; or an ensemble's (``restore_ensemble``), whose
    steps are tuples (one step per member) and whose parameters are ``ensemble.stack``ed."""

    config: object
    setup: setup_lib.Setup
    task_steps: dict[str, int | tuple[int, ...]]  # task -> the step its predictions come from
    restore_step: Callable[[int], object]  # step -> its parameters, in setup.state_shardings.params
    kept: dict[int, object] = dataclasses.field(default_factory=dict)  # step -> parameters already restored
    members: int = 0  # an ensemble's number of runs; 0 for one run

    @property
    def step(self) -> int | tuple[int, ...] | dict[str, int | tuple[int, ...]]:
        """The step restored, or {task: step} where tasks come from different steps."""
        steps = set(self.task_steps.values())
        return steps.pop() if len(steps) == 1 else dict(self.task_steps)

    def by_step(self) -> Iterator[tuple[int | tuple[int, ...], object, list[str]]]:
        """(step, its params, the tasks read from it) for each step, in step order. A run read from
        one step keeps its parameters; where tasks come from several (per-task selection), each
        step's are restored when reached, so that one step's parameters are held at a time."""
        for step in sorted(set(self.task_steps.values())):
            params = self.kept[step] if step in self.kept else self.restore_step(step)
            yield step, params, [t for t, at in self.task_steps.items() if at == step]
            del params


def _note(message: str) -> None:
    if jax.process_index() == 0:
        _log.info("%s", message)


def fit_to_devices(config, num_devices: int):
    """``config`` with a mesh and eval batch size that fit ``num_devices`` (a copy when changed)."""
    try:
        shape = sharding.mesh_shape(config, num_devices)
    except ConfigError:
        config = config.copy_and_resolve_references()
        for axis, size in _DATA_PARALLEL.items():
            config.mesh.shape[axis] = size
        shape = sharding.mesh_shape(config, num_devices)
        _note(f"the run's mesh does not fit the {num_devices} device(s) present: restoring data-parallel")
    data_parallel = shape[0] * shape[1]
    if config.eval_batch_size % data_parallel:
        config = config.copy_and_resolve_references()
        config.eval_batch_size = -(-config.eval_batch_size // data_parallel) * data_parallel
        _note(f"eval_batch_size rounded up to {config.eval_batch_size}, a multiple of the {data_parallel} "
              "data-parallel devices")
    return config


def _records_differences(first: Mapping | None, second: Mapping | None) -> list[str]:
    """The ``_MUST_MATCH`` entries in which two records manifests differ (none where one is None:
    runs trained before the workdir recorded its manifest)."""
    if first is None or second is None:
        return []
    return [k for k in _MUST_MATCH if first.get(k) != second.get(k)]


def check_same_records(trained_on: Mapping | None, manifest: Mapping, data_dir: str) -> None:
    """Raises if the records at ``data_dir`` differ from those the run was trained on in tasks,
    feature dimensions or tokenizer (the model would read them wrongly, silently)."""
    differ = _records_differences(trained_on, manifest)
    if differ:
        raise MmjaxError(f"the records at {data_dir!r} differ from those the run was trained on in "
                         f"{', '.join(differ)} (see {saved_run.RECORDS_MANIFEST} in the workdir)")


def training_manifest(workdir: str, config) -> dict:
    """The records manifest the run was trained on: the workdir's copy, else (older runs) the
    records directory's."""
    recorded = saved_run.load_manifest(workdir)
    return recorded if recorded is not None else prepared_records.load(config)


def check_trained(workdir: str) -> None:
    """Raises unless ``workdir`` holds a run's checkpoints."""
    if not epath.Path(workdir).is_dir():
        raise MmjaxError(f"workdir {workdir!r} does not exist")
    if not (epath.Path(workdir) / "checkpoints").is_dir():
        raise MmjaxError(f"no checkpoints in workdir {workdir!r}: train it first")


def run_config(workdir: str, config=None):
    """``config`` if given, else the workdir's own (reading the records training read:
    ``saved_run.with_recorded_records``), fitted to the devices present."""
    check_trained(workdir)
    if config is None:
        config = saved_run.with_recorded_records(saved_run.load_config(workdir), saved_run.load_manifest(workdir))
    return fit_to_devices(config, jax.device_count())


def restore(workdir: str, step: int | str = "latest", config=None, manifest: Mapping | None = None) -> RestoredRun:
    """Restores ``step`` ("latest", "best" or a number) of ``workdir``; "best" under per-task
    selection restores each task's best step.

    ``manifest``: the records manifest to build the model from (prediction passes the training
    one and needs no records); None reads the records directory, which must hold the records the
    run was trained on (evaluation).
    """
    explain = functools.partial(_explain_failure, workdir, config)
    config = run_config(workdir, config)
    try:
        return _restore(workdir, step, config, manifest, explain)
    except (checkpointing.DamagedCheckpoint, checkpointing.NoCheckpointRestores) as e:
        explain(e)
        raise


def _explain_failure(workdir: str, given, error: Exception) -> None:
    """Raises ConfigError where ``given`` (a ``--config``, or None) differs from the run's recorded
    config in keys that decide its parameters: it builds parameters the checkpoints do not hold,
    the likelier cause of ``error`` (a step that does not restore) than damage."""
    differ = {} if given is None else {k: v for k, v in saved_run.config_differences(workdir, given).items()
                                       if k.startswith(_PARAMETER_KEYS)}
    if differ:
        raise ConfigError(f"{workdir!r} does not restore with the given --config, which differs from the run's "
                          f"{saved_run.CONFIG} in keys that may change its parameters: "
                          f"{saved_run.describe_differences(differ)}; leave --config out to use the run's own "
                          f"({error})") from None


def _restore(workdir: str, step: int | str, config, manifest: Mapping | None, explain) -> RestoredRun:
    """``restore``'s work, ``config`` already fitted to the devices present; ``explain(error)``
    raises a clearer error for a step that does not restore, where it has one."""
    if manifest is None:
        s = setup_lib.build(config, training=False)
        check_same_records(saved_run.load_manifest(workdir), s.manifest, config.data.dir)
    else:
        s = setup_lib.build(config, manifest=manifest, training=False)
    tasks = list(config.tasks)
    # A run with a moving average of its parameters is evaluated with it, as in its validation.
    key = "params" if s.abstract_state.ema_params is None else "ema_params"

    def restore_step(at: int):  # also called later, for per-task steps
        with contextlib.closing(checkpointing.manager(workdir, create=False)) as mngr:
            try:
                return checkpointing.checked_restore(mngr, at, functools.partial(_restore_params, mngr, s, key))
            except checkpointing.DamagedCheckpoint as e:
                explain(e)
                raise

    with contextlib.closing(checkpointing.manager(workdir, create=False)) as mngr:
        task_steps = checkpointing.resolve_task_steps(mngr, step, workdir, tasks,
                                                      checkpointing.per_task_selection(config))
        if step == "latest":  # falls back to the newest step that restores; "best" or a number does not
            resolved, params = checkpointing.restore_newest(mngr, functools.partial(_restore_params, mngr, s, key),
                                                            set_aside=False)
            return RestoredRun(config, s, dict.fromkeys(tasks, resolved), restore_step, {resolved: params})
        steps = sorted(set(task_steps.values()))
        if len(steps) > 1:  # restored one at a time later: damage is found now, not half-way through
            for at in steps:
                checkpointing.verify(mngr, at)
    return RestoredRun(config, s, task_steps, restore_step, {steps[0]: restore_step(steps[0])} if len(steps) == 1 else {})


def seed_workdirs(template: str, seeds: list[str]) -> list[str]:
    """The workdir of each seed: ``template`` with ``{seed}`` replaced; each must hold a trained run."""
    if SEED not in template:
        raise MmjaxError(f"--seeds needs {SEED} in --workdir (got {template!r}), e.g. --workdir=runs/soft_s{SEED}")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise MmjaxError(f"--seeds={','.join(seeds)}: give at least two different seeds")
    bad = [seed for seed in seeds if not re.fullmatch(r"[A-Za-z0-9_.-]+", seed)]
    if bad:
        raise MmjaxError(f"--seeds: {bad} are not names made of letters, digits, '_', '.' or '-'")
    workdirs = [template.replace(SEED, seed) for seed in seeds]
    for workdir in workdirs:  # all of them before the first is evaluated
        check_trained(workdir)
    return workdirs


def restore_ensemble(workdirs: list[str], step: int | str = "latest", config=None,
                     manifest: Mapping | None = None) -> RestoredRun:
    """The runs in ``workdirs``, each restored as ``restore`` does, as one ensemble
    (``mmjax.ensemble``): a task is read from each run's own step for it, the members'
    parameters stacked. Raises unless the runs share one model and one corpus."""
    runs = [restore(w, step, config, manifest) for w in workdirs]
    try:
        ensemble.check_members([run.setup.model for run in runs], [run.setup.abstract_state.params for run in runs],
                               workdirs)
    except ValueError as e:
        raise MmjaxError(str(e)) from None
    recorded = [saved_run.load_manifest(w) for w in workdirs]  # None for runs older than the record
    for workdir, trained_on in zip(workdirs[1:], recorded[1:]):
        differ = _records_differences(trained_on, recorded[0])
        if differ:
            raise MmjaxError(f"{workdir} was trained on records that differ from {workdirs[0]}'s in "
                             f"{', '.join(differ)} (see {saved_run.RECORDS_MANIFEST} in each): an ensemble's "
                             "members read one corpus")
    first = runs[0]

    def restore_steps(steps: tuple[int, ...]):
        members = [run.kept[at] if at in run.kept else run.restore_step(at) for run, at in zip(runs, steps)]
        return ensemble.stack(members, first.setup.state_shardings.params)

    task_steps = {task: tuple(run.task_steps[task] for run in runs) for task in first.config.tasks}
    return RestoredRun(first.config, first.setup, task_steps, restore_steps, members=len(runs))


def _restore_params(mngr, s: setup_lib.Setup, key: str, step: int):
    return checkpointing.restore_params(mngr, step, s.abstract_state.params, key)
