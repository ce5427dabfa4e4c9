"""Evaluation reports for people: per-class and breakdown tables, confusion-matrix figures, and the
aggregate over several seeds (mean and sample standard deviation of every score)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from mmjax import figures, metrics
from mmjax.tasks import KINDS

CLASS_SCORES = ("precision", "recall", "f1")


def scores_of(task_report: Mapping) -> tuple[str, ...]:
    """The score names a task's report carries: its kind's ``metrics.SCORES`` and the loss."""
    return (*metrics.SCORES[metrics.kind_of(task_report)], "loss")


def _details(task_report: Mapping) -> dict:
    """Per class (classification) or per label (multi-label) scores; {} for regression."""
    return task_report.get("per_class") or task_report.get("per_label") or {}


def format_per_class(report: Mapping) -> str:
    """One block per task: precision, recall, F1, support and predicted count of every class
    (multi-label: of every label)."""
    lines = ["per class (multi-label: per label)",
             f"{'task':<20}{'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}{'predicted':>11}"]
    for task, r in report.items():
        for label, c in _details(r).items():
            lines.append(f"{task:<20}{label:<14}{c['precision']:>10.4f}{c['recall']:>10.4f}{c['f1']:>10.4f}"
                         f"{c['support']:>9d}{c['predicted']:>11d}")
    return "\n".join(lines)


def format_breakdown(report: Mapping, key: str, group_name: str) -> str:
    """Rows: the groups of ``key`` ("by_speaker" or "by_modalities"); columns: each task's
    headline score (``metrics.HEADLINE``), and the group's labelled utterances (the largest
    count over tasks)."""
    tasks = list(report)
    groups = list(dict.fromkeys(g for r in report.values() for g in r[key]))
    width = max([len(g) for g in groups] + [len(group_name)]) + 2
    heads = {t: metrics.HEADLINE[metrics.kind_of(report[t])] for t in tasks}
    lines = [f"by {group_name}",
             f"{group_name:<{width}}" + "".join(f"{(t[:10] + ' ' + heads[t])[:17]:>18}" for t in tasks)
             + f"{'utterances':>12}"]
    for g in groups:
        cells = [report[t][key].get(g) for t in tasks]
        lines.append(f"{g:<{width}}" + "".join(f"{c[heads[t]]:>18.4f}" if c else f"{'-':>18}"
                                               for t, c in zip(tasks, cells))
                     + f"{max(c['support'] for c in cells if c):>12d}")
    return "\n".join(lines)


def png_name(split: str, task: str) -> str:
    """File name of a task's confusion-matrix PNG."""
    return f"confusion_{split}_{re.sub(r'[^A-Za-z0-9_.+-]', '-', task)}.png"


def write_confusion_pngs(report: Mapping, directory: str, split: str, model: str | Mapping[str, str]) -> dict[str, str]:
    """Writes one confusion-matrix figure per classification task into ``directory``, titled with the task, split
    and ``model`` (e.g. "step 1200"; or one per task); returns {task: file name}."""
    names = {}
    for task, r in report.items():
        if "confusion" not in r:  # regression and multi-label tasks have none
            continue
        names[task] = png_name(split, task)
        title = f"{task}: {split} split, {model if isinstance(model, str) else model[task]}"
        figure = figures.confusion_figure(np.asarray(r["confusion"]), r["labels"], title)
        figures.save_png(figure, os.path.join(directory, names[task]))
    return names


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1))}


def aggregate(reports: Sequence[Mapping]) -> dict:
    """Mean and sample standard deviation (ddof=1) over runs of each task's scores and per-class
    (per-label) precision/recall/F1, and of the mean headline score over tasks (``"score"``,
    ``metrics.HEADLINE``); each run's support. Needs >= 2 reports."""
    if len(reports) < 2:
        raise ValueError(f"aggregating needs at least 2 runs, got {len(reports)}")
    tasks = list(reports[0])
    out = {"score": _mean_std([np.mean([metrics.headline(r[t]) for t in tasks]) for r in reports]), "tasks": {}}
    for task in tasks:
        runs = [r[task] for r in reports]
        out["tasks"][task] = {
            "kind": metrics.kind_of(runs[0]),
            **{k: _mean_std([r[k] for r in runs]) for k in scores_of(runs[0])},
            "support": [r["support"] for r in runs],  # per run: folds have different test sets
            "per_class": {label: {k: _mean_std([_details(r)[label][k] for r in runs]) for k in CLASS_SCORES}
                          for label in _details(runs[0])}}
    return out


def step_label(step: int | tuple[int, ...] | Mapping[str, int | tuple[int, ...]]) -> str:
    """"step N", or each task's step where tasks come from different steps (per-task selection);
    an ensemble's step is its members', "N1/N2/..."."""
    at = lambda s: "/".join(map(str, s)) if isinstance(s, (tuple, list)) else str(s)  # noqa: E731
    if isinstance(step, Mapping):
        return "steps " + ", ".join(f"{task} {at(s)}" for task, s in step.items())
    return f"step {at(step)}"


def run_scores(seed: str, workdir: str, step: int | Mapping[str, int], report: Mapping) -> dict:
    """One seed's line of a multi-seed evaluation: its workdir, the step evaluated, the mean
    headline score over tasks (``score``) and each task's scores."""
    return {"seed": seed, "workdir": workdir, "step": step,
            "score": float(np.mean([metrics.headline(r) for r in report.values()])),
            "tasks": {t: {"kind": metrics.kind_of(r), **{k: r[k] for k in scores_of(r)}} for t, r in report.items()}}


def format_runs(runs: Sequence[Mapping], title: str) -> str:
    """Each seed's step, mean headline score and each task's headline score."""
    tasks = runs[0]["tasks"]
    heads = {t: metrics.HEADLINE[metrics.kind_of(r)] for t, r in tasks.items()}
    lines = [title, f"{'seed':<10}{'step':>8}{'mean score':>15}"
             + "".join(f"{(t[:10] + ' ' + heads[t])[:19]:>20}" for t in tasks)]
    for run in runs:
        step = "per task" if isinstance(run["step"], Mapping) else run["step"]  # each task's: in the JSON
        lines.append(f"{run['seed']:<10}{step:>8}{run['score']:>15.4f}"
                     + "".join(f"{run['tasks'][t][heads[t]]:>20.4f}" for t in tasks))
    return "\n".join(lines)


def format_aggregate(aggregated: Mapping, title: str) -> str:
    """Mean ± std of every score, one table per kind of task, and of the mean headline score."""
    lines = [title]
    for kind in KINDS:
        tasks = {t: r for t, r in aggregated["tasks"].items() if metrics.kind_of(r) == kind}
        if not tasks:
            continue
        names = (*metrics.SCORES[kind], "loss")
        lines.append(f"{'task':<20}" + "".join(f"{k:>20}" for k in names))
        for task, r in tasks.items():
            lines.append(f"{task:<20}" + "".join(f"{r[k]['mean']:>11.4f} ± {r[k]['std']:<6.4f}" for k in names))
    score = aggregated["score"]
    lines.append(f"{'mean score':<20}{score['mean']:>11.4f} ± {score['std']:<6.4f}")
    return "\n".join(lines)
