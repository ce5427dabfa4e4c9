"""Evaluation over a split: confusion matrices summed over batches, scores and reports."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import jax
import numpy as np

from mmjax import breakdowns, inputs, losses, metrics, saved_run, sharding
from mmjax import progress as progress_lib
from mmjax.data import records
from mmjax.errors import RecordError
from mmjax.models import towers
from mmjax.tasks import get_task, resolve_tasks

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)


def run(eval_step, params, config, manifest, split: str, mesh, rules, details: bool = False,
        top_speakers: int = 10) -> dict:
    """Per task: scores, mean loss, the confusion matrix and per-class scores over every labelled
    utterance; with ``details``, also scores by speaker (the ``top_speakers`` most frequent) and
    by modalities present (``by_speaker``, ``by_modalities``)."""
    totals, rows, utterances = None, [], 0
    started = first = time.perf_counter()
    with sharding.activate(mesh, rules):
        batches = inputs.eval_batches(config, manifest, split, jax.process_index(), jax.process_count())
        bar = progress_lib.bar(batches, desc=f"evaluate {split}", unit="batch", leave=False)
        for i, local_batch in enumerate(bar):
            out = eval_step(params, sharding.global_batch(local_batch, mesh))
            batch_rows = out.pop("rows")
            if details:
                rows.append(batch_rows)  # fetched once at the end: no host sync per batch
            totals = out if totals is None else jax.tree.map(lambda a, b: a + b, totals, out)
            utterances += int((local_batch["position"][..., 0] >= 0).sum())
            if i == 0:  # the first batch compiles the step (once per process): timed apart
                jax.block_until_ready(totals)
                first = time.perf_counter()
    if totals is None:
        raise RecordError(f"the {split} split of {config.data.dir!r} has no dialogues to evaluate")
    totals = jax.device_get(totals)
    if jax.process_index() == 0:
        done = time.perf_counter()
        _log.info(f"{split}: {utterances:,} utterances (this host's) evaluated in {done - started:.1f} s, the first "
                  f"batch {first - started:.1f} s with compilation, the rest {done - first:.1f} s")
    report = {}
    for task in config.tasks:
        count = float(totals[f"{task}/count"])
        report[task] = task_report(task, np.asarray(totals[task]), float(totals[f"{task}/loss_sum"]) / max(count, 1.0),
                                   manifest["splits"]["train"]["class_counts"][task])
    if details:
        _add_breakdowns(report, breakdowns.utterance_rows(jax.device_get(rows)), config, manifest, split,
                        top_speakers)
    return report


def task_report(task: str, confusion: np.ndarray, loss: float, train_class_counts: Mapping[str, int]) -> dict:
    """One task's scores from its [true, predicted] ``confusion``: accuracy, macro/weighted-F1,
    support, mean ``loss``, the training-majority baseline (from ``train_class_counts``, label ->
    count in label order), labels, the confusion matrix and per-class scores."""
    majority = metrics.constant_prediction_scores(confusion.sum(1), int(np.argmax(list(train_class_counts.values()))))
    labels = list(train_class_counts)
    per_class = metrics.per_class(confusion)
    return {**metrics.scores(confusion), "loss": loss,
            "majority_baseline": {k: majority[k] for k in ("accuracy", "macro_f1", "weighted_f1")},
            "labels": labels,
            "confusion": confusion.tolist(),
            "per_class": {label: {k: v[i].item() for k, v in per_class.items()} for i, label in enumerate(labels)}}


def _add_breakdowns(report: dict, rows: dict, config, manifest, split: str, top_speakers: int) -> None:
    dialogues = records.DialogueSource(config.data.dir, split, manifest)
    groups = {"by_speaker": breakdowns.speaker_groups(rows, dialogues, top_speakers),
              "by_modalities": breakdowns.modality_patterns(rows, config.model.modalities)}
    for task in config.tasks:
        for key, members in groups.items():
            report[task][key] = breakdowns.group_scores(members, rows[f"label/{task}"], rows[f"predicted/{task}"],
                                                        get_task(task, manifest).num_classes)


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


def learned_task_relations(params, config, manifest) -> dict:
    """What training learned about how the tasks relate, from the (unboxed) model params.

    ``cross_stitch``: soft sharing's mixing matrices, "layer_i" -> [tasks, tasks] with row k the
    weights task k's tower gives to each task's state (rows and columns in ``tasks`` order);
    empty for hard sharing or without cross-stitch units. ``log_variance`` / ``loss_weight``
    (uncertainty weighting only): each task's learned s_t and its loss weight exp(-s_t).
    """
    tower_tasks = [t.name for t in resolve_tasks(config.tasks, manifest) if not t.relates]
    matrices = towers.cross_stitch_matrices(params.get("sharing", {}))
    out = {"tasks": tower_tasks, "cross_stitch": {k: m.tolist() for k, m in matrices.items()}}
    if losses.TASK_LOG_VARIANCE in params:
        log_variance = np.asarray(jax.device_get(params[losses.TASK_LOG_VARIANCE]), np.float64)
        out["log_variance"] = dict(zip(config.tasks, log_variance.tolist()))
        out["loss_weight"] = dict(zip(config.tasks, np.exp(-log_variance).tolist()))
    return out


def format_task_relations(relations: Mapping) -> str:
    """The cross-stitch matrices (row: task, column: the task it takes from) and learned loss
    weights of ``learned_task_relations`` as text tables."""
    tasks = relations["tasks"]
    lines = []
    for layer, matrix in relations["cross_stitch"].items():
        lines.append(f"cross-stitch mixing after tower {layer} (row takes from column)")
        lines.append(f"{'':<12}" + "".join(f"{t:>11}" for t in tasks))
        lines += [f"{t:<12}" + "".join(f"{v:>11.3f}" for v in row) for t, row in zip(tasks, matrix)]
    if "log_variance" in relations:
        lines.append(f"{'task':<20}{'log_variance':>14}{'loss_weight':>13}")
        lines += [f"{t:<20}{s:>14.4f}{relations['loss_weight'][t]:>13.4f}"
                  for t, s in relations["log_variance"].items()]
    return "\n".join(lines) or "no learned task relations (no cross-stitch units, static loss weights)"
