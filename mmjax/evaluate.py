"""Evaluate a trained run on one split and write ``<workdir>/eval_<split>.json``::

    python -m mmjax.evaluate --config=configs/soft_share.py --workdir=runs/soft_share --split=test

Restores the latest checkpoint (or ``--step=best`` / ``--step=N``) onto the devices present,
whatever mesh wrote it.
This is the only place the test split is read.
"""

from __future__ import annotations

import os

import jax
from absl import app, flags
from ml_collections import config_flags

from mmjax import checkpointing, cli, evaluation, trainer
from mmjax.errors import MmjaxError

config_flags.DEFINE_config_file("config", None, "Path to the run's config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "The run's workdir (holds checkpoints/).")
flags.DEFINE_string("step", "latest", "Checkpoint to evaluate: latest, best (by validation score) or a step.")
flags.DEFINE_string("split", "test", "Split to evaluate: validation or test.")
flags.mark_flags_as_required(["config", "workdir"])


def evaluate(config, workdir: str, split: str = "test", step: int | str = "latest") -> dict:
    """Restores ``step`` ("latest", "best" or a step number) of ``workdir``; evaluates it on ``split``."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise MmjaxError(f"no checkpoints in workdir {workdir!r}: train it first")
    s = trainer.setup(config)
    mngr = checkpointing.manager(workdir, create=False)
    available = list(mngr.all_steps())
    named = {"latest": mngr.latest_step, "best": lambda: checkpointing.best_step(mngr)}
    if step in named:
        step = named[step]()
    elif str(step).isdigit():
        step = int(step)
    else:
        raise MmjaxError(f"--step={step!r}: expected latest, best or a step number")
    if step is None or step not in available:
        raise MmjaxError(f"workdir {workdir!r} has no checkpoint for step {step}; it has {available}")
    state = checkpointing.restore(mngr, step, s.abstract_state)
    report = evaluation.run(trainer.jit_eval_step(s), state.params, config, s.manifest, split, s.mesh, s.rules)
    relations = evaluation.learned_task_relations(state.params, config)
    if jax.process_index() == 0:
        evaluation.write_report(report, os.path.join(workdir, f"eval_{split}.json"), split=split, step=step,
                                task_relations=relations)
        print(evaluation.format_table(report, f"{split} split, checkpoint step {step}"))
        print(evaluation.format_task_relations(relations))
    return report


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.initialize()
    with cli.user_errors("mmjax.evaluate"):
        evaluate(flags.FLAGS.config, flags.FLAGS.workdir, flags.FLAGS.split, flags.FLAGS.step)


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("mmjax.evaluate"))
