"""Evaluation reports for people: per-class and breakdown tables, confusion-matrix figures, and the
aggregate over several seeds (mean and sample standard deviation of every score)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np

from mmjax import figures

SCORES = ("accuracy", "macro_f1", "weighted_f1", "loss")
CLASS_SCORES = ("precision", "recall", "f1")


def format_per_class(report: Mapping) -> str:
    """One block per task: precision, recall, F1, support and predicted count of every class."""
    lines = ["per class", f"{'task':<20}{'class':<14}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"
                          f"{'predicted':>11}"]
    for task, r in report.items():
        for label, c in r["per_class"].items():
            lines.append(f"{task:<20}{label:<14}{c['precision']:>10.4f}{c['recall']:>10.4f}{c['f1']:>10.4f}"
                         f"{c['support']:>9d}{c['predicted']:>11d}")
    return "\n".join(lines)


def format_breakdown(report: Mapping, key: str, group_name: str) -> str:
    """Rows: the groups of ``key`` ("by_speaker" or "by_modalities"); columns: each task's
    macro-F1, and the group's labelled utterances (the largest count over tasks)."""
    tasks = list(report)
    groups = list(dict.fromkeys(g for r in report.values() for g in r[key]))
    width = max([len(g) for g in groups] + [len(group_name)]) + 2
    lines = [f"macro_f1 by {group_name}",
             f"{group_name:<{width}}" + "".join(f"{t[:17]:>18}" for t in tasks) + f"{'utterances':>12}"]
    for g in groups:
        cells = [report[t][key].get(g) for t in tasks]
        lines.append(f"{g:<{width}}" + "".join(f"{c['macro_f1']:>18.4f}" if c else f"{'-':>18}" for c in cells)
                     + f"{max(c['support'] for c in cells if c):>12d}")
    return "\n".join(lines)


def png_name(split: str, task: str) -> str:
    """File name of a task's confusion-matrix PNG."""
    return f"confusion_{split}_{re.sub(r'[^A-Za-z0-9_.+-]', '-', task)}.png"


def write_confusion_pngs(report: Mapping, directory: str, split: str, model: str) -> dict[str, str]:
    """Writes one confusion-matrix figure per task into ``directory``, titled with the task, split
    and ``model`` (e.g. "step 1200"); returns {task: file name}."""
    names = {}
    for task, r in report.items():
        names[task] = png_name(split, task)
        figure = figures.confusion_figure(np.asarray(r["confusion"]), r["labels"], f"{task}: {split} split, {model}")
        figures.save_png(figure, os.path.join(directory, names[task]))
    return names


def _mean_std(values: Sequence[float]) -> dict[str, float]:
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1))}


def aggregate(reports: Sequence[Mapping]) -> dict:
    """Mean and sample standard deviation (ddof=1) over runs of each task's scores and per-class
    precision/recall/F1, and of the mean macro-F1 over tasks (``"score"``); each run's support.
    Needs >= 2 reports."""
    if len(reports) < 2:
        raise ValueError(f"aggregating needs at least 2 runs, got {len(reports)}")
    tasks = list(reports[0])
    out = {"score": _mean_std([np.mean([r[t]["macro_f1"] for t in tasks]) for r in reports]), "tasks": {}}
    for task in tasks:
        runs = [r[task] for r in reports]
        out["tasks"][task] = {
            **{k: _mean_std([r[k] for r in runs]) for k in SCORES},
            "support": [r["support"] for r in runs],  # per run: folds have different test sets
            "per_class": {label: {k: _mean_std([r["per_class"][label][k] for r in runs]) for k in CLASS_SCORES}
                          for label in runs[0]["per_class"]}}
    return out


def run_scores(seed: str, workdir: str, step: int, report: Mapping) -> dict:
    """One seed's line of a multi-seed evaluation: its workdir, the step evaluated, the mean
    macro-F1 over tasks (``score``) and each task's SCORES."""
    return {"seed": seed, "workdir": workdir, "step": step,
            "score": float(np.mean([r["macro_f1"] for r in report.values()])),
            "tasks": {t: {k: r[k] for k in SCORES} for t, r in report.items()}}


def format_runs(runs: Sequence[Mapping], title: str) -> str:
    """Each seed's step, mean macro-F1 and macro-F1 per task."""
    tasks = list(runs[0]["tasks"])
    lines = [title, f"{'seed':<10}{'step':>8}{'mean macro_f1':>15}" + "".join(f"{t[:18]:>20}" for t in tasks)]
    for run in runs:
        lines.append(f"{run['seed']:<10}{run['step']:>8}{run['score']:>15.4f}"
                     + "".join(f"{run['tasks'][t]['macro_f1']:>20.4f}" for t in tasks))
    return "\n".join(lines)


def format_aggregate(aggregated: Mapping, title: str) -> str:
    lines = [title, f"{'task':<20}" + "".join(f"{k:>20}" for k in SCORES)]
    for task, r in aggregated["tasks"].items():
        lines.append(f"{task:<20}" + "".join(f"{r[k]['mean']:>11.4f} ± {r[k]['std']:<6.4f}" for k in SCORES))
    score = aggregated["score"]
    lines.append(f"{'mean macro_f1':<20}{score['mean']:>31.4f} ± {score['std']:<6.4f}")
    return "\n".join(lines)
