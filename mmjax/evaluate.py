"""Evaluate a trained run on one split::

    python -m mmjax.evaluate --workdir=runs/soft_share --split=test [--step=best|N]
    python -m mmjax.evaluate --workdir=runs/soft_s{seed} --seeds=0,1,2 --split=test
    python -m mmjax.evaluate --workdir=runs/soft_s{seed} --seeds=0,1,2 --split=test --ensemble

Restores the latest checkpoint (or ``--step=best`` by validation score, or ``--step=N``) onto the
devices present (a run trained with ``config.checkpoint_selection="per_task"``: ``best`` reads each
task from its own best step), whatever mesh wrote it, with the config the workdir recorded (``--config``
replaces it). Writes into the workdir ``eval_<split>.json`` (per task: accuracy, macro- and
weighted-F1, loss, majority baseline, per-class precision/recall/F1, confusion matrix, scores by
speaker and by modalities present) and one confusion-matrix PNG per task, and prints the tables.

With ``--seeds``, ``{seed}`` in ``--workdir`` is replaced by each seed in turn; every run is
evaluated as above, and the mean and sample standard deviation of every score go to
``eval_<split>_seeds.json`` in the directory named by the workdir with ``{seed}`` replaced by the
seeds joined with "-" (``runs/soft_s0-1-2/`` above). With ``--ensemble`` as well, the seeds' runs
are evaluated as one model instead (``mmjax.ensemble``: class probabilities, label probabilities
or values averaged over the runs, each at ``--step``), written to ``eval_<split>_ensemble.json``
there.

The work is done by ``mmjax.run_evaluation``, the only place the test split is read.
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from mmjax import cli, run_evaluation
from mmjax.errors import MmjaxError


def _define_flags():
    """Defined only when the command runs, so that command modules can be imported together."""
    config_flags.DEFINE_config_file("config", None, "Config file; default: the one the workdir recorded.",
                                    lock_config=True)
    flags.DEFINE_string("workdir", None, "The run's workdir (holds checkpoints/); may contain {seed} (see --seeds).")
    flags.DEFINE_string("step", "latest", "Checkpoint to evaluate: latest, best (by validation score) or a step.")
    flags.DEFINE_string("split", "test", "Split to evaluate: validation or test.")
    flags.DEFINE_list("seeds", None, "Seeds that replace {seed} in --workdir; reports mean and std over the runs.")
    flags.DEFINE_bool("ensemble", False, "With --seeds: evaluate the seeds' runs as one ensemble (their "
                                         "probabilities or values averaged).")
    flags.DEFINE_integer("top_speakers", 10, "Speakers with their own row in the by-speaker table; the rest "
                                             "are grouped.")
    flags.mark_flags_as_required(["workdir"])

def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.initialize()
    f = flags.FLAGS
    with cli.user_errors("mmjax.evaluate"):
        if f.ensemble and f.seeds is None:
            raise MmjaxError("--ensemble needs the runs: give --seeds and {seed} in --workdir")
        if f.ensemble:
            run_evaluation.evaluate_ensemble(f.config, f.workdir, f.seeds, f.split, f.step, f.top_speakers)
        elif f.seeds is not None:
            run_evaluation.evaluate_seeds(f.config, f.workdir, f.seeds, f.split, f.step, f.top_speakers)
        elif run_evaluation.SEED in f.workdir:
            raise MmjaxError(f"--workdir={f.workdir} contains {run_evaluation.SEED}: give the seeds with --seeds")
        else:
            run_evaluation.evaluate(f.config, f.workdir, f.split, f.step, f.top_speakers)


def command():
    """The ``mmjax-evaluate`` console script (``python -m mmjax.evaluate``)."""
    cli.run("mmjax.evaluate", _define_flags, main)


if __name__ == "__main__":
    command()
