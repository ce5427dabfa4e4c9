"""Evaluation of trained runs: one checkpoint of a workdir on a split, the runs of several seeds
with the mean and standard deviation of every score, or their ensemble (``mmjax.ensemble``)
(``python -m mmjax.evaluate``).

Writes into the workdir ``eval_<split>.json`` (per task: the scores of its kind, loss, the
training baseline, per-class (per-label) precision/recall/F1, the confusion matrix of a
classification task, scores by speaker and by modalities present, the learned task relations)
and one confusion-matrix PNG per classification task. Over seeds,
``eval_<split>_seeds.json`` goes to the directory named by the workdir template with ``{seed}``
replaced by the seeds joined with "-", and so does the ensemble's ``eval_<split>_ensemble.json``.
The test split is read here and nowhere else.
"""

from __future__ import annotations

import contextlib
import os

import jax
from etils import epath

from mmjax import evaluation, report as report_lib, restored_run, saved_run, setup as setup_lib
from mmjax.data import records
from mmjax.restored_run import SEED, seed_workdirs


def evaluate(config, workdir: str, split: str = "test", step: int | str = "latest", top_speakers: int = 10,
             verbose: bool = True) -> dict:
    """Restores ``step`` ("latest", "best" or a step number) of ``workdir``, evaluates it on
    ``split`` and writes the report and PNGs there; ``config=None`` uses the workdir's own."""
    run = restored_run.restore(workdir, step, config)
    return _evaluate(run, workdir, f"eval_{split}.json", split, top_speakers, workdir if verbose else None)


def evaluate_ensemble(config, template: str, seeds: list[str], split: str = "test", step: int | str = "latest",
                      top_speakers: int = 10) -> dict:
    """Evaluates the seeds' runs as one ensemble (``mmjax.ensemble``: their class probabilities,
    label probabilities or values averaged), each run at ``step`` ("best" under per-task
    selection: each task from each run's own best step for it), and writes the report and PNGs
    where ``evaluate_seeds`` writes its own, as ``eval_<split>_ensemble.json``."""
    workdirs = seed_workdirs(template, seeds)
    run = restored_run.restore_ensemble(workdirs, step, config)
    directory = template.replace(SEED, "-".join(seeds))
    if jax.process_index() == 0:
        epath.Path(directory).mkdir(parents=True, exist_ok=True)
    return _evaluate(run, directory, f"eval_{split}_ensemble.json", split, top_speakers,
                     f"ensemble of seeds {', '.join(seeds)}", workdirs=workdirs)


def _evaluate(run: restored_run.RestoredRun, directory: str, filename: str, split: str, top_speakers: int,
              title: str | None, **extra) -> dict:
    """Evaluates ``run`` (one run or an ensemble) on ``split``; writes the report as ``filename``
    and the confusion PNGs into ``directory``, and prints the tables under ``title`` (None:
    silent)."""
    s = run.setup
    eval_step = setup_lib.jit_eval_step(s, run.members)
    result, relations = {}, {}
    # The one place the test split may be opened (records.DialogueSource refuses it elsewhere).
    allow = records.reading_test_split() if split == records.TEST_SPLIT else contextlib.nullcontext()
    with allow:
        for at_step, params, tasks in run.by_step():
            at = evaluation.run(eval_step, params, run.config, s.manifest, split, s.mesh, s.rules, details=True,
                                top_speakers=top_speakers)
            result.update({t: at[t] for t in tasks})
            if not run.members:  # an ensemble's members each learned their own
                relations[at_step] = evaluation.learned_task_relations(params, run.config, s.manifest)
    result = {t: result[t] for t in run.config.tasks}
    relations = merge_task_relations(relations, run.task_steps) if relations else None
    if jax.process_index() == 0:
        pngs = report_lib.write_confusion_pngs(result, directory, split,
                                               {t: report_lib.step_label(at) for t, at in run.task_steps.items()})
        evaluation.write_report(result, os.path.join(directory, filename), split=split, step=run.step,
                                confusion_png=pngs, **({"task_relations": relations} if relations else {}), **extra)
        if title is not None:
            tables = [evaluation.format_table(result, f"{title}: {split} split, checkpoint "
                                                      f"{report_lib.step_label(run.step)}"),
                      report_lib.format_per_class(result),
                      report_lib.format_breakdown(result, "by_speaker", "speaker"),
                      report_lib.format_breakdown(result, "by_modalities", "modalities present")]
            print("\n\n".join(tables + ([evaluation.format_task_relations(relations)] if relations else [])))
    return result


def merge_task_relations(by_step: dict[int, dict], task_steps: dict[str, int]) -> dict:
    """One ``evaluation.learned_task_relations`` from those of each step restored (``by_step``):
    where tasks come from different steps, each task's row of the cross-stitch matrices and its
    loss weight from its own step (``task_steps``)."""
    if len(by_step) == 1:
        return next(iter(by_step.values()))
    of_task = lambda task: by_step[task_steps[task]]  # noqa: E731
    merged = dict(next(iter(by_step.values())))
    merged["cross_stitch"] = {layer: [of_task(t)["cross_stitch"][layer][i] for i, t in enumerate(merged["tasks"])]
                              for layer in merged["cross_stitch"]}
    for key in ("log_variance", "loss_weight"):
        if key in merged:
            merged[key] = {t: of_task(t)[key][t] for t in merged[key]}
    return merged


def evaluate_seeds(config, template: str, seeds: list[str], split: str = "test", step: int | str = "latest",
                   top_speakers: int = 10) -> dict:
    """Evaluates every seed's run and writes the mean and std over them (see module docstring)."""
    workdirs = seed_workdirs(template, seeds)
    evaluated = []
    for workdir in workdirs:
        run = restored_run.restore(workdir, step, config)
        evaluated.append((_evaluate(run, workdir, f"eval_{split}.json", split, top_speakers, None), run.step))
    reports = [report for report, _ in evaluated]
    aggregated = report_lib.aggregate(reports)
    runs = [report_lib.run_scores(seed, workdir, at, report)
            for seed, workdir, (report, at) in zip(seeds, workdirs, evaluated)]
    if jax.process_index() == 0:
        directory = template.replace(SEED, "-".join(seeds))
        epath.Path(directory).mkdir(parents=True, exist_ok=True)
        path = os.path.join(directory, f"eval_{split}_seeds.json")
        saved_run.write_json(path, {"split": split, "step": step, "seeds": seeds, "workdirs": workdirs, "runs": runs,
                                    **aggregated})
        print(report_lib.format_runs(runs, f"{split} split, each seed (--step={step})"))
        print(report_lib.format_aggregate(aggregated, f"{split} split over seeds {', '.join(seeds)} "
                                                      f"(mean ± sample std), written to {path}"))
    return aggregated
