"""Orbax checkpoints holding the train state and the data-iterator state together.

Saves are asynchronous and atomic: Orbax writes into a temporary directory and renames it when
complete, so a run killed during a save never leaves a step that ``latest_step`` would pick up.
"""

from __future__ import annotations

import json
import os
import sys

import grain
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from mmjax.errors import MmjaxError

STATE, DATA = "state", "data"


SCORE = "validation_score"


def _score(metrics) -> float:
    return metrics[SCORE]


def manager(workdir: str, keep_latest: int | None = None, create: bool = True) -> ocp.CheckpointManager:
    """The workdir's manager: keeps the latest ``keep_latest`` checkpoints plus the one with the
    best validation score (``keep_latest=None`` keeps, and deletes, nothing)."""
    policy = None
    if keep_latest is not None:
        policy = preservation_policy.AnyPreservationPolicy([
            preservation_policy.LatestN(keep_latest),
            preservation_policy.BestN(get_metric_fn=_score, n=1,
                                      keep_checkpoints_without_metrics=False)])
    # best_fn makes Orbax store each step's metrics (and rank steps by them in best_step()).
    options = ocp.CheckpointManagerOptions(create=create, enable_async_checkpointing=True,
                                           best_fn=_score, best_mode="max", preservation_policy=policy)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                                 options=options)


def save(mngr: ocp.CheckpointManager, step: int, state, data_iterator, score: float) -> None:
    """Saves state and iterator asynchronously; ``score`` ranks it for the best checkpoint."""
    mngr.save(step, metrics={SCORE: score}, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardSave(state), DATA: grain.checkpoint.CheckpointSave(data_iterator)}))


def best_step(mngr: ocp.CheckpointManager) -> int | None:
    """The saved step with the highest validation score."""
    return mngr.best_step()


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
        print(f"the checkpoint at step {step} has no moving average of the params: it starts from them",
              file=sys.stderr)
    return abstract_state.replace(step=fields["step"], params=fields["params"], opt_state=fields["opt_state"],
                                  ema_params=ema if wanted else None)


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
