"""Evaluate a trained run on one split::

    python -m mmjax.evaluate --workdir=runs/soft_share --split=test [--step=best|N]
    python -m mmjax.evaluate --workdir=runs/soft_s{seed} --seeds=0,1,2 --split=test

Restores the latest checkpoint (or ``--step=best`` by validation score, or ``--step=N``) onto the
devices present, whatever mesh wrote it, with the config the workdir recorded (``--config``
replaces it). Writes into the workdir ``eval_<split>.json`` (per task: accuracy, macro- and
weighted-F1, loss, majority baseline, per-class precision/recall/F1, confusion matrix, scores by
speaker and by modalities present) and one confusion-matrix PNG per task, and prints the tables.

With ``--seeds``, ``{seed}`` in ``--workdir`` is replaced by each seed in turn; every run is
evaluated as above, and the mean and sample standard deviation of every score go to
``eval_<split>_seeds.json`` in the directory named by the workdir with ``{seed}`` replaced by the
seeds joined with "-" (``runs/soft_s0-1-2/`` above).

This is the only place the test split is read.
"""

from __future__ import annotations

import contextlib
import os
import re

import jax
from absl import app, flags
from ml_collections import config_flags

from mmjax import cli, evaluation, inference, report as report_lib, saved_run, setup as setup_lib
from mmjax.data import records
from mmjax.errors import MmjaxError


def _define_flags():
    """Defined only when the command runs, so that command modules can be imported together."""
    config_flags.DEFINE_config_file("config", None, "Config file; default: the one the workdir recorded.",
                                    lock_config=True)
    flags.DEFINE_string("workdir", None, "The run's workdir (holds checkpoints/); may contain {seed} (see --seeds).")
    flags.DEFINE_string("step", "latest", "Checkpoint to evaluate: latest, best (by validation score) or a step.")
    flags.DEFINE_string("split", "test", "Split to evaluate: validation or test.")
    flags.DEFINE_list("seeds", None, "Seeds that replace {seed} in --workdir; reports mean and std over the runs.")
    flags.DEFINE_integer("top_speakers", 10, "Speakers with their own row in the by-speaker table; the rest "
                                             "are grouped.")
    flags.mark_flags_as_required(["workdir"])

SEED = "{seed}"


def evaluate(config, workdir: str, split: str = "test", step: int | str = "latest", top_speakers: int = 10,
             verbose: bool = True) -> dict:
    """Restores ``step`` ("latest", "best" or a step number) of ``workdir``, evaluates it on
    ``split`` and writes the report and PNGs there; ``config=None`` uses the workdir's own."""
    return _evaluate(config, workdir, split, step, top_speakers, verbose)[0]


def _evaluate(config, workdir: str, split: str, step: int | str, top_speakers: int, verbose: bool) -> tuple[dict, int]:
    """``evaluate``'s report and the step it evaluated (what "latest" or "best" resolved to)."""
    run = inference.restore(workdir, step, config)
    s = run.setup
    # The one place the test split may be opened (records.DialogueSource refuses it elsewhere).
    allow = records.reading_test_split() if split == records.TEST_SPLIT else contextlib.nullcontext()
    with allow:
        result = evaluation.run(setup_lib.jit_eval_step(s), run.params, run.config, s.manifest, split, s.mesh,
                                s.rules, details=True, top_speakers=top_speakers)
    relations = evaluation.learned_task_relations(run.params, run.config, run.setup.manifest)
    if jax.process_index() == 0:
        pngs = report_lib.write_confusion_pngs(result, workdir, split, f"step {run.step}")
        evaluation.write_report(result, os.path.join(workdir, f"eval_{split}.json"), split=split, step=run.step,
                                confusion_png=pngs, task_relations=relations)
        if verbose:
            print("\n\n".join([evaluation.format_table(result, f"{workdir}: {split} split, checkpoint step {run.step}"),
                               report_lib.format_per_class(result),
                               report_lib.format_breakdown(result, "by_speaker", "speaker"),
                               report_lib.format_breakdown(result, "by_modalities", "modalities present"),
                               evaluation.format_task_relations(relations)]))
    return result, run.step


def seed_workdirs(template: str, seeds: list[str]) -> list[str]:
    """The workdir of each seed: ``template`` with ``{seed}`` replaced."""
    if SEED not in template:
        raise MmjaxError(f"--seeds needs {SEED} in --workdir (got {template!r}), e.g. --workdir=runs/soft_s{SEED}")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise MmjaxError(f"--seeds={','.join(seeds)}: give at least two different seeds")
    bad = [seed for seed in seeds if not re.fullmatch(r"[A-Za-z0-9_.-]+", seed)]
    if bad:
        raise MmjaxError(f"--seeds: {bad} are not names made of letters, digits, '_', '.' or '-'")
    return [template.replace(SEED, seed) for seed in seeds]


def evaluate_seeds(config, template: str, seeds: list[str], split: str = "test", step: int | str = "latest",
                   top_speakers: int = 10) -> dict:
    """Evaluates every seed's run and writes the mean and std over them (see module docstring)."""
    workdirs = seed_workdirs(template, seeds)
    evaluated = [_evaluate(config, w, split, step, top_speakers, verbose=False) for w in workdirs]
    reports = [report for report, _ in evaluated]
    aggregated = report_lib.aggregate(reports)
    runs = [report_lib.run_scores(seed, workdir, at, report)
            for seed, workdir, (report, at) in zip(seeds, workdirs, evaluated)]
    if jax.process_index() == 0:
        directory = template.replace(SEED, "-".join(seeds))
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"eval_{split}_seeds.json")
        saved_run.write_json(path, {"split": split, "step": step, "seeds": seeds, "workdirs": workdirs, "runs": runs,
                                    **aggregated})
        print(report_lib.format_runs(runs, f"{split} split, each seed (--step={step})"))
        print(report_lib.format_aggregate(aggregated, f"{split} split over seeds {', '.join(seeds)} "
                                                      f"(mean ± sample std), written to {path}"))
    return aggregated


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.initialize()
    f = flags.FLAGS
    with cli.user_errors("mmjax.evaluate"):
        if f.seeds is not None:
            evaluate_seeds(f.config, f.workdir, f.seeds, f.split, f.step, f.top_speakers)
        elif SEED in f.workdir:
            raise MmjaxError(f"--workdir={f.workdir} contains {SEED}: give the seeds with --seeds")
        else:
            evaluate(f.config, f.workdir, f.split, f.step, f.top_speakers)


def command():
    """The ``mmjax-evaluate`` console script (``python -m mmjax.evaluate``)."""
    cli.run("mmjax.evaluate", _define_flags, main)


if __name__ == "__main__":
    command()
