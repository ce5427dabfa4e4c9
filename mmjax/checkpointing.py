"""Orbax checkpoints holding the train state and the data-iterator state together.

Saves are asynchronous and atomic: Orbax writes into a temporary directory and renames it when
complete, so a run killed during a save never leaves a step that ``latest_step`` would pick up.

Damage after the save (a disk or copy that truncates, empties or flips bytes) is caught by a
checksum file each finished step gets (``seal``), checked before it is restored (``verify``): Orbax
itself restores a flipped byte as a wrong parameter, silently. A step that fails either way is a
``DamagedCheckpoint`` naming the step and what is wrong; training falls back to the newest one
that restores and moves the damaged ones aside, keeping them (``restore_newest``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence

import grain
import jax
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils
from orbax.checkpoint.checkpoint_managers import preservation_policy

from mmjax.atomic import is_local, write_atomically
from mmjax.errors import MmjaxError, chain, out_of_space

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)

STATE, DATA = "state", "data"
CHECKSUMS = "mmjax_checksums.json"  # in each step directory: {relative path: blake2b hex digest}
DAMAGED = "damaged"  # checkpoints/damaged/<step>: steps moved aside by restore_newest


class NoCheckpointRestores(MmjaxError):
    """Every saved step of a run failed to restore (``restore_newest``)."""


class DamagedCheckpoint(MmjaxError):
    """A saved step that is incomplete, altered or fails to restore; names the step and why."""

    def __init__(self, step: int, why: str):
        super().__init__(f"the checkpoint at step {step} is damaged: {why}")
        self.step = step


SCORE = "validation_score"
TASK_SCORE = "validation_score/{}"  # each task's own, for per-task checkpoint selection
STEP = "step"  # in each step's metrics too: a policy ranking steps sees only their metrics


def _rank(key: str, metrics) -> tuple[float, int]:
    """How a saved step ranks for the score ``key``: higher first, then the *earlier* of equal
    scores, so that only a strict improvement moves the best step (a task whose score stays flat
    keeps its first step; early stopping counts from it). Steps saved without the score rank
    last; steps saved before STEP was stored, by position (Orbax keeps the later)."""
    return metrics.get(key, float("-inf")), -metrics.get(STEP, 0)


_joint_rank = functools.partial(_rank, SCORE)


def manager(workdir: str, keep_latest: int | None = None, create: bool = True,
            best_of_tasks: Sequence[str] = ()) -> ocp.CheckpointManager:
    """The workdir's manager: keeps the latest ``keep_latest`` checkpoints plus the one with the
    best validation score and, for each of ``best_of_tasks``, the one with that task's best
    (``keep_latest=None`` keeps, and deletes, nothing)."""
    policy = None
    if keep_latest is not None:
        policy = preservation_policy.AnyPreservationPolicy([
            preservation_policy.LatestN(keep_latest),
            *(preservation_policy.BestN(get_metric_fn=fn, n=1, keep_checkpoints_without_metrics=False)
              for fn in [_joint_rank, *(functools.partial(_rank, TASK_SCORE.format(t)) for t in best_of_tasks)])])
    # best_fn makes Orbax store each step's metrics (and rank steps by them in best_step()); Orbax
    # only sorts by it, so a tuple serves.
    options = ocp.CheckpointManagerOptions(create=create, enable_async_checkpointing=True,
                                           best_fn=_joint_rank, best_mode="max", preservation_policy=policy)
    _quiet_orbax_failures()
    return ocp.CheckpointManager(workdir_path(workdir) / "checkpoints", options=options)


def workdir_path(workdir: str) -> epath.Path:
    """``workdir`` as an ``epath.Path``: absolute when local, as given when a URL (``gs://``)."""
    return epath.Path(os.path.abspath(workdir) if is_local(workdir) else workdir)


def save(mngr: ocp.CheckpointManager, step: int, state, data_iterator, score: float,
         task_scores: Mapping[str, float] | None = None) -> None:
    """Saves state and iterator asynchronously; ``score`` ranks it for the best checkpoint, each of
    ``task_scores`` ({task: validation score}) for that task's. The steps saved before it are
    sealed first (Orbax waits for them before a new save anyway)."""
    seal(mngr)
    with _space_checked(mngr):
        mngr.save(step, metrics=step_metrics(step, score, task_scores), args=ocp.args.Composite(**{
            STATE: ocp.args.StandardSave(state), DATA: grain.checkpoint.CheckpointSave(data_iterator)}))


def step_metrics(step: int, score: float | None, task_scores: Mapping[str, float] | None = None) -> dict:
    """The metrics Orbax stores with a saved step, by which the manager ranks it (``score=None``:
    without the joint score, as ``best_task_scores`` takes a step still being saved)."""
    joint = {} if score is None else {SCORE: score}
    return {STEP: step, **joint, **{TASK_SCORE.format(t): v for t, v in (task_scores or {}).items()}}


@contextlib.contextmanager
def _space_checked(mngr: ocp.CheckpointManager):
    """A full disk during a save is one MmjaxError saying which checkpoints are intact (Orbax
    writes each step to a temporary directory first, so every earlier step is)."""
    try:
        yield
    except Exception as e:  # noqa: BLE001  Orbax and TensorStore wrap the OSError in many ways
        if not out_of_space(e):
            raise
        mngr.reload()
        steps = mngr.all_steps()
        kept = (f"the checkpoints at steps {', '.join(map(str, sorted(steps)))} are intact: free space and run the "
                "same command again to resume" if steps else "no checkpoint was saved before")
        raise MmjaxError(f"no space left on the device of {mngr.directory} while saving a checkpoint; {kept}") from e


def best_step(mngr: ocp.CheckpointManager) -> int | None:
    """The saved step with the highest validation score."""
    return mngr.best_step()


def per_task_selection(config) -> bool:
    """Whether ``config``'s best checkpoint is each task's own (``config.checkpoint_selection``;
    runs recorded before the key existed select jointly)."""
    return config.get("checkpoint_selection", "joint") == "per_task"


def best_task_scores(mngr: ocp.CheckpointManager, tasks: Sequence[str],
                     unfinished: Mapping[int, Mapping[str, float]] | None = None) -> dict[str, tuple[int, float]]:
    """{task: (the saved step with that task's highest validation score, the score)}, the earliest
    of equals (``_rank``). Orbax reads the scores of finished steps from disk; ``unfinished``
    gives {step: {task: score}} for steps whose save is still in flight (the trainer's latest),
    so that no caller has to wait for them."""
    unfinished = unfinished or {}
    steps = sorted(set(mngr.all_steps()) | set(unfinished))
    saved = {step: step_metrics(step, None, unfinished[step]) if step in unfinished else mngr.metrics(step) or {}
             for step in steps}
    out = {}
    for task in tasks:
        key = TASK_SCORE.format(task)
        scored = [step for step in steps if key in saved[step]]
        if not scored:
            raise MmjaxError(f"no checkpoint in {mngr.directory} has its own validation score for task {task!r}: "
                             "per-task selection needs a run trained with config.checkpoint_selection='per_task'")
        best = max(scored, key=lambda step: _rank(key, saved[step]))  # the manager's rule: what it keeps
        out[task] = best, float(saved[best][key])
    return out


def best_task_steps(mngr: ocp.CheckpointManager, tasks: Sequence[str],
                    unfinished: Mapping[int, Mapping[str, float]] | None = None) -> dict[str, int]:
    """{task: the saved step with that task's highest validation score} (``best_task_scores``)."""
    return {task: step for task, (step, _) in best_task_scores(mngr, tasks, unfinished).items()}


def _saved_moving_average(mngr: ocp.CheckpointManager, step: int) -> str:
    """How the state saved at ``step`` holds ``ema_params``: "arrays", "none" (the field, empty)
    or "absent" (saved before the field existed), read from Orbax's tree metadata."""
    keys = json.loads((mngr.directory / str(step) / STATE / "_METADATA").read_text())["tree_metadata"]
    if "('ema_params',)" in keys:
        return "none"
    return "arrays" if any(k.startswith("('ema_params', ") for k in keys) else "absent"


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state, data_iterator=None):
    """Restores the state into ``abstract_state``'s shardings (and the iterator in place).

    Checkpoints of runs without a moving average of the params, or saved before it existed,
    restore too; a state that wants one then starts it from the restored params (saying so)."""
    saved = _saved_moving_average(mngr, step)
    wanted = abstract_state.ema_params is not None
    if saved == "absent":
        target = {k: getattr(abstract_state, k) for k in ("step", "params", "opt_state")}
    else:
        target = abstract_state.replace(ema_params=abstract_state.params if saved == "arrays" else None)
    items = {STATE: ocp.args.StandardRestore(target)}
    if data_iterator is not None:
        items[DATA] = grain.checkpoint.CheckpointRestore(data_iterator)
    restored = mngr.restore(step, args=ocp.args.Composite(**items))[STATE]
    fields = restored if saved == "absent" else {k: getattr(restored, k) for k in ("step", "params", "opt_state",
                                                                                    "ema_params")}
    ema = fields.get("ema_params") if saved == "arrays" else None
    if wanted and ema is None:
        ema = fields["params"]
        _log.warning("the checkpoint at step %d has no moving average of the params: it starts from them", step)
    return abstract_state.replace(step=fields["step"], params=fields["params"], opt_state=fields["opt_state"],
                                  ema_params=ema if wanted else None)


def resolve_task_steps(mngr: ocp.CheckpointManager, step: int | str, workdir: str, tasks: Sequence[str],
                       per_task: bool) -> dict[str, int]:
    """{task: the saved step it is read from}: ``step`` for every task (``resolve_step``), or with
    ``per_task`` and ``step="best"`` each task's own best step."""
    if step == "best" and per_task:
        return best_task_steps(mngr, tasks)
    resolved = resolve_step(mngr, step, workdir)
    return dict.fromkeys(tasks, resolved)


def resolve_step(mngr: ocp.CheckpointManager, step: int | str, workdir: str) -> int:
    """``step`` ("latest", "best" by validation score, or a number) -> a saved step number."""
    available = list(mngr.all_steps())
    named = {"latest": mngr.latest_step, "best": lambda: best_step(mngr)}
    if step in named:
        resolved = named[step]()
    elif str(step).isdigit():
        resolved = int(step)
    else:
        raise MmjaxError(f"--step={step!r}: expected latest, best or a step number")
    if resolved is None or resolved not in available:
        raise MmjaxError(f"workdir {workdir!r} has no checkpoint for step {step}; it has {available}")
    return resolved


def restore_params(mngr: ocp.CheckpointManager, step: int, abstract_params, key: str = "params"):
    """Restores only the parameters (not the optimizer state) into ``abstract_params``'
    shardings, whatever mesh wrote them: Orbax reshards on read. ``key``: the state field,
    "params" or "ema_params" (their moving average)."""
    item = {key: abstract_params}
    args = ocp.args.PyTreeRestore(item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                                  partial_restore=True)
    return mngr.restore(step, args=ocp.args.Composite(**{STATE: args}))[STATE][key]


def _digests(step_dir: epath.Path) -> dict[str, str]:
    """{path relative to ``step_dir``: blake2b digest} of every file of a saved step."""
    digests = {}
    for root, _, files in step_dir.walk():
        for name in files:
            relative = str((root / name).relative_to(step_dir))
            if relative != CHECKSUMS:
                digest = hashlib.blake2b()
                with (root / name).open("rb") as f:  # read in chunks: not every epath file has readinto
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        digest.update(chunk)
                digests[relative] = digest.hexdigest()
    return dict(sorted(digests.items()))


def seal(mngr: ocp.CheckpointManager) -> None:
    """Waits for in-flight saves, then writes the checksum file of every finished step that lacks
    one (process 0; the steps are complete once Orbax has renamed them into place)."""
    with _space_checked(mngr):
        mngr.wait_until_finished()
    if jax.process_index() != 0:
        return
    for step in mngr.all_steps():
        step_dir = epath.Path(mngr.directory) / str(step)
        if not (step_dir / CHECKSUMS).exists():
            digests = _digests(step_dir)
            write_atomically(step_dir / CHECKSUMS, lambda f: json.dump(digests, f, indent=0))


def verify(mngr: ocp.CheckpointManager, step: int) -> None:
    """Raises DamagedCheckpoint when a file of ``step`` is missing or differs from its checksum
    (steps saved before checksums existed, or not yet sealed, are checked by restoring alone)."""
    step_dir = epath.Path(mngr.directory) / str(step)
    try:
        expected = json.loads((step_dir / CHECKSUMS).read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as e:
        raise DamagedCheckpoint(step, f"its {CHECKSUMS} is unreadable ({e})") from e
    found = _digests(step_dir)
    for path, digest in expected.items():
        if path not in found:
            raise DamagedCheckpoint(step, f"{path} is missing")
        if found[path] != digest:
            raise DamagedCheckpoint(step, f"{path} differs from its checksum")


def checked_restore(mngr: ocp.CheckpointManager, step: int, restore_fn: Callable[[int], object]):
    """``restore_fn(step)`` after ``verify``; any failure to restore is a DamagedCheckpoint."""
    verify(mngr, step)
    try:
        return restore_fn(step)
    except Exception as e:  # Orbax/TensorStore raise many types for missing or truncated files
        raise DamagedCheckpoint(step, f"it does not restore ({_root_cause(e)})") from e


def _orbax_failure_echo(record: logging.LogRecord) -> bool:
    """Whether a log record repeats a failure that reaches mmjax as an exception anyway: Orbax's
    background threads log each failed save at ERROR with its traceback before re-raising it,
    and the reads and writes it abandons report their errors again as asyncio's "Task exception
    was never retrieved"."""
    from_orbax = f"{os.sep}orbax{os.sep}" in record.pathname and record.levelno >= logging.ERROR
    return from_orbax or "never retrieved" in record.getMessage()


def _quiet_orbax_failures() -> None:
    """Keeps the console to the one line mmjax prints for a failed save or restore: drops the
    echoes of ``_orbax_failure_echo`` and TensorStore's callbacks into a closed event loop (and
    abandoned coroutines finalised at exit), which Python reports as unraisable exceptions."""
    if getattr(sys.unraisablehook, "_mmjax_quiet", False):
        return
    for name in ("absl", "asyncio"):
        logging.getLogger(name).addFilter(lambda record: not _orbax_failure_echo(record))
    previous = sys.unraisablehook

    def hook(unraisable):
        closed_loop = isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"
        if not (closed_loop or inspect.iscoroutine(unraisable.object)):
            previous(unraisable)

    hook._mmjax_quiet = True
    sys.unraisablehook = hook


def _root_cause(error: BaseException) -> str:
    """The innermost error's first line: TensorStore's names the file, its wrapper dumps a spec."""
    error = chain(error)[-1]
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:300] if lines else ''}"


def restore_newest(mngr: ocp.CheckpointManager, restore_fn: Callable[[int], object], set_aside: bool):
    """(step, ``restore_fn(step)``) for the newest step that restores, saying which were skipped.

    ``set_aside``: move each damaged step to ``checkpoints/damaged/<step>`` (kept for inspection;
    training then saves that step anew). Raises MmjaxError when none restores."""
    failures = []
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            return step, checked_restore(mngr, step, restore_fn)
        except DamagedCheckpoint as e:
            failures.append(str(e))
            if jax.process_index() == 0:
                _log.warning("%s; %strying the one before", e, "moved aside, " if set_aside else "")
            if set_aside:
                _set_aside(mngr, step)
    raise NoCheckpointRestores(f"no checkpoint in {mngr.directory} restores: {'; '.join(failures)}")


def _set_aside(mngr: ocp.CheckpointManager, step: int) -> None:
    if jax.process_index() == 0:
        damaged, source = epath.Path(mngr.directory) / DAMAGED, epath.Path(mngr.directory) / str(step)
        target, suffix = damaged / str(step), 1
        while target.exists():
            target, suffix = damaged / f"{step}.{suffix}", suffix + 1
        damaged.mkdir(parents=True, exist_ok=True)
        if is_local(target):
            source.rename(target)
        else:  # a bucket has no directories to rename: each object moves
            for root, _, files in list(source.walk()):
                for name in files:
                    moved = target / (root / name).relative_to(source)
                    moved.parent.mkdir(parents=True, exist_ok=True)
                    (root / name).rename(moved)
            source.rmtree()
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(f"mmjax set aside {step}")
    mngr.reload()
