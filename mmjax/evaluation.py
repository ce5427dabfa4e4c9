"""Evaluation over a split: confusion matrices summed over batches, scores and reports."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import jax
import numpy as np

from mmjax import metrics, sharding
from mmjax.data import pipeline
from mmjax.tasks import get_task


def run(eval_step, params, config, manifest, split: str, mesh, rules) -> dict:
    """Per task: scores, mean loss and the confusion matrix over every labelled utterance."""
    totals = None
    with sharding.activate(mesh, rules):
        for local_batch in pipeline.eval_batches(config, manifest, split, jax.process_index(),
                                                 jax.process_count()):
            out = eval_step(params, sharding.global_batch(local_batch, mesh))
            totals = out if totals is None else jax.tree.map(lambda a, b: a + b, totals, out)
    totals = jax.device_get(totals)
    report = {}
    for task in config.tasks:
        confusion = np.asarray(totals[task])
        count = float(totals[f"{task}/count"])
        train_counts = list(manifest["splits"]["train"]["class_counts"][task].values())
        majority = metrics.constant_prediction_scores(confusion.sum(1), int(np.argmax(train_counts)))
        report[task] = {**metrics.scores(confusion),
                        "loss": float(totals[f"{task}/loss_sum"]) / max(count, 1.0),
                        "majority_baseline": {k: majority[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
                        "labels": list(get_task(task).labels),
                        "confusion": confusion.tolist()}
    return report


def format_table(report: Mapping, title: str) -> str:
    lines = [title, f"{'task':<20}{'accuracy':>10}{'macro_f1':>10}{'weighted_f1':>13}{'support':>9}"
                    f"{'majority macro_f1':>19}"]
    for task, r in report.items():
        lines.append(f"{task:<20}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}{r['weighted_f1']:>13.4f}"
                     f"{r['support']:>9d}{r['majority_baseline']['macro_f1']:>19.4f}")
    return "\n".join(lines)


def write_report(report: Mapping, path: str, **extra) -> None:
    """Writes the report as JSON atomically (temporary file, then rename)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({**extra, "tasks": report}, f, indent=1)
    os.replace(tmp, path)
