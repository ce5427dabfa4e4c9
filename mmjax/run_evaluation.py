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
import re

import jax
from etils import epath

from mmjax import ensemble, evaluation, report as report_lib, restored_run, saved_run, setup as setup_lib
from mmjax.data import records
from mmjax.errors import MmjaxError

SEED = "{seed}"


def evaluate(config, workdir: str, split: str = "test", step: int | str = "latest", top_speakers: int = 10,
             verbose: bool = True) -> dict:
    """Restores ``step`` ("latest", "best" or a step number) of ``workdir``, evaluates it on
    ``split`` and writes the report and PNGs there; ``config=None`` uses the workdir's own."""
    return _evaluate(config, workdir, split, step, top_speakers, verbose)[0]


def _evaluate(config, workdir: str, split: str, step: int | str, top_speakers: int,
              verbose: bool) -> tuple[dict, int | dict]:
    """``evaluate``'s report and the step it evaluated (what "latest" or "best" resolved to;
    {task: step} where tasks come from different steps)."""
    run = restored_run.restore(workdir, step, config)
    s = run.setup
    eval_step = setup_lib.jit_eval_step(s)
    result, relations = {}, {}
    # The one place the test split may be opened (records.DialogueSource refuses it elsewhere).
    allow = records.reading_test_split() if split == records.TEST_SPLIT else contextlib.nullcontext()
    with allow:
        for at_step, params, tasks in run.by_step():
            at = evaluation.run(eval_step, params, run.config, s.manifest, split, s.mesh, s.rules, details=True,
                                top_speakers=top_speakers)
            result.update({t: at[t] for t in tasks})
            relations[at_step] = evaluation.learned_task_relations(params, run.config, s.manifest)
    result = {t: result[t] for t in run.config.tasks}
    relations = merge_task_relations(relations, run.task_steps)
    label = report_lib.step_label(run.step)
    if jax.process_index() == 0:
        pngs = report_lib.write_confusion_pngs(result, workdir, split,
                                               {t: report_lib.step_label(at) for t, at in run.task_steps.items()})
        evaluation.write_report(result, os.path.join(workdir, f"eval_{split}.json"), split=split, step=run.step,
                                confusion_png=pngs, task_relations=relations)
        if verbose:
            print("\n\n".join([evaluation.format_table(result, f"{workdir}: {split} split, checkpoint {label}"),
                               report_lib.format_per_class(result),
                               report_lib.format_breakdown(result, "by_speaker", "speaker"),
                               report_lib.format_breakdown(result, "by_modalities", "modalities present"),
                               evaluation.format_task_relations(relations)]))
    return result, run.step


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


def _same_model(runs: list, workdirs: list[str]) -> None:
    """Raises unless every run has the first one's model, tasks and records (an ensemble's
    members share one model)."""
    describe = lambda c: (c.model.to_dict(), tuple(c.tasks), c.data.dir)  # noqa: E731
    for run, workdir in zip(runs[1:], workdirs[1:]):
        if describe(run.config) != describe(runs[0].config):
            raise MmjaxError(f"{workdir} was trained with another model, tasks or records than {workdirs[0]} "
                             "(config.model, config.tasks, config.data.dir): runs of one config make an ensemble")


def evaluate_ensemble(config, template: str, seeds: list[str], split: str = "test", step: int | str = "latest",
                      top_speakers: int = 10) -> dict:
    """Evaluates the ensemble of the seeds' runs (``mmjax.ensemble``: their class probabilities,
    label probabilities or values averaged), each run at ``step`` ("best" under per-task
    selection: each task from each run's own best step for it), and writes the report as
    ``eval_<split>_ensemble.json`` where ``evaluate_seeds`` writes its own."""
    workdirs = seed_workdirs(template, seeds)
    runs = [restored_run.restore(w, step, config) for w in workdirs]
    _same_model(runs, workdirs)
    s, first = runs[0].setup, runs[0].config
    eval_step = setup_lib.jit_eval_step(s, members=len(runs))
    plan = {}  # each run's step -> the tasks read from that combination
    for task in first.tasks:
        plan.setdefault(tuple(run.task_steps[task] for run in runs), []).append(task)
    restored = {}  # (run index, step) -> params, restored once
    result = {}
    allow = records.reading_test_split() if split == records.TEST_SPLIT else contextlib.nullcontext()
    with allow:
        for steps, tasks in plan.items():
            members = []
            for i, (run, at) in enumerate(zip(runs, steps)):
                if (i, at) not in restored:
                    restored[i, at] = run.kept[at] if at in run.kept else run.restore_step(at)
                members.append(restored[i, at])
            params = ensemble.stack(members, s.state_shardings.params)
            at = evaluation.run(eval_step, params, first, s.manifest, split, s.mesh, s.rules, details=True,
                                top_speakers=top_speakers)
            result.update({t: at[t] for t in tasks})
    result = {t: result[t] for t in first.tasks}
    if jax.process_index() == 0:
        directory = template.replace(SEED, "-".join(seeds))
        epath.Path(directory).mkdir(parents=True, exist_ok=True)
        path = os.path.join(directory, f"eval_{split}_ensemble.json")
        evaluation.write_report(result, path, split=split, step=step, seeds=seeds, workdirs=workdirs,
                                member_steps=[run.step for run in runs])
        print("\n\n".join([evaluation.format_table(result, f"ensemble of seeds {', '.join(seeds)}: {split} split, "
                                                            f"checkpoint {step} of each, written to {path}"),
                            report_lib.format_per_class(result)]))
    return result


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
        epath.Path(directory).mkdir(parents=True, exist_ok=True)
        path = os.path.join(directory, f"eval_{split}_seeds.json")
        saved_run.write_json(path, {"split": split, "step": step, "seeds": seeds, "workdirs": workdirs, "runs": runs,
                                    **aggregated})
        print(report_lib.format_runs(runs, f"{split} split, each seed (--step={step})"))
        print(report_lib.format_aggregate(aggregated, f"{split} split over seeds {', '.join(seeds)} "
                                                      f"(mean ± sample std), written to {path}"))
    return aggregated
