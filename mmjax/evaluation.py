"""Evaluation over a split: confusion matrices summed over batches, scores and reports."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import numpy as np

from mmjax import breakdowns, metrics, saved_run, sharding
from mmjax.data import pipeline, records
from mmjax.tasks import get_task


def run(eval_step, params, config, manifest, split: str, mesh, rules, details: bool = False,
        top_speakers: int = 10) -> dict:
    """Per task: scores, mean loss, the confusion matrix and per-class scores over every labelled
    utterance; with ``details``, also scores by speaker (the ``top_speakers`` most frequent) and
    by modalities present (``by_speaker``, ``by_modalities``)."""
    totals, rows = None, []
    with sharding.activate(mesh, rules):
        for local_batch in pipeline.eval_batches(config, manifest, split, jax.process_index(),
                                                 jax.process_count()):
            out = eval_step(params, sharding.global_batch(local_batch, mesh))
            batch_rows = out.pop("rows")
            if details:
                rows.append(batch_rows)  # fetched once at the end: no host sync per batch
            totals = out if totals is None else jax.tree.map(lambda a, b: a + b, totals, out)
    totals = jax.device_get(totals)
    report = {}
    for task in config.tasks:
        confusion = np.asarray(totals[task])
        count = float(totals[f"{task}/count"])
        train_counts = list(manifest["splits"]["train"]["class_counts"][task].values())
        majority = metrics.constant_prediction_scores(confusion.sum(1), int(np.argmax(train_counts)))
        labels = list(get_task(task).labels)
        per_class = metrics.per_class(confusion)
        report[task] = {**metrics.scores(confusion),
                        "loss": float(totals[f"{task}/loss_sum"]) / max(count, 1.0),
                        "majority_baseline": {k: majority[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
                        "labels": labels,
                        "confusion": confusion.tolist(),
                        "per_class": {label: {k: v[i].item() for k, v in per_class.items()}
                                      for i, label in enumerate(labels)}}
    if details:
        _add_breakdowns(report, breakdowns.utterance_rows(jax.device_get(rows)), config, manifest, split,
                        top_speakers)
    return report


def _add_breakdowns(report: dict, rows: dict, config, manifest, split: str, top_speakers: int) -> None:
    dialogues = records.DialogueSource(config.data.dir, split, manifest)
    groups = {"by_speaker": breakdowns.speaker_groups(rows, dialogues, top_speakers),
              "by_modalities": breakdowns.modality_patterns(rows, config.model.modalities)}
    for task in config.tasks:
        for key, members in groups.items():
            report[task][key] = breakdowns.group_scores(members, rows[f"label/{task}"], rows[f"predicted/{task}"],
                                                        get_task(task).num_classes)


def format_table(report: Mapping, title: str) -> str:
    lines = [title, f"{'task':<20}{'accuracy':>10}{'macro_f1':>10}{'weighted_f1':>13}{'support':>9}"
                    f"{'majority macro_f1':>19}"]
    for task, r in report.items():
        lines.append(f"{task:<20}{r['accuracy']:>10.4f}{r['macro_f1']:>10.4f}{r['weighted_f1']:>13.4f}"
                     f"{r['support']:>9d}{r['majority_baseline']['macro_f1']:>19.4f}")
    return "\n".join(lines)


def write_report(report: Mapping, path: str, **extra) -> None:
    """Writes the report as JSON atomically (temporary file, then rename)."""
    saved_run.write_json(path, {**extra, "tasks": report})
