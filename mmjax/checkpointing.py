"""Orbax checkpoints holding the train state and the data-iterator state together.

Saves are asynchronous and atomic: Orbax writes into a temporary directory and renames it when
complete, so a run killed during a save never leaves a step that ``latest_step`` would pick up.
"""

from __future__ import annotations

import os

import grain
import orbax.checkpoint as ocp

STATE, DATA = "state", "data"


def manager(workdir: str, max_to_keep: int | None = None, create: bool = True) -> ocp.CheckpointManager:
    """The workdir's manager; ``max_to_keep=None`` keeps every checkpoint (and deletes none)."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=create,
                                           enable_async_checkpointing=True)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                                 options=options)


def save(mngr: ocp.CheckpointManager, step: int, state, data_iterator) -> None:
    mngr.save(step, args=ocp.args.Composite(**{
        STATE: ocp.args.StandardSave(state), DATA: grain.checkpoint.CheckpointSave(data_iterator)}))


def restore(mngr: ocp.CheckpointManager, step: int, abstract_state, data_iterator=None):
    """Restores the state into ``abstract_state``'s shardings (and the iterator in place)."""
    items = {STATE: ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
        items[DATA] = grain.checkpoint.CheckpointRestore(data_iterator)
    return mngr.restore(step, args=ocp.args.Composite(**items))[STATE]
