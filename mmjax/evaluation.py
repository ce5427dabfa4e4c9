"""Evaluation over a split: each task's statistics summed over batches, scores and reports."""

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
from mmjax.tasks import CLASSIFICATION, KINDS, MULTILABEL, REGRESSION, Task, resolve_tasks

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)


def run(eval_step, params, config, manifest, split: str, mesh, rules, details: bool = False,
        top_speakers: int = 10, rows_sink=None) -> dict:
    """Per task: scores, mean loss, the confusion matrix and per-class scores over every labelled
    utterance; with ``details``, also scores by speaker (the ``top_speakers`` most frequent) and
    by modalities present (``by_speaker``, ``by_modalities``). ``rows_sink``: called with the
    per-utterance rows (``breakdowns.utterance_rows``; one process only)."""
    totals, rows, utterances = None, [], 0
    started = first = time.perf_counter()
    with sharding.activate(mesh, rules):
        batches = inputs.eval_batches(config, manifest, split, jax.process_index(), jax.process_count())
        bar = progress_lib.bar(batches, desc=f"evaluate {split}", unit="batch", leave=False)
        for i, local_batch in enumerate(bar):
            out = eval_step(params, sharding.global_batch(local_batch, mesh))
            batch_rows = out.pop("rows")
            if details or rows_sink:
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
    tasks = resolve_tasks(config.tasks, manifest)
    report = {}
    for task in tasks:
        count = float(totals[f"{task.name}/count"])
        stats = {k.partition("/")[2]: v for k, v in totals.items() if k.startswith(f"{task.name}/")}
        report[task.name] = task_report(task, stats, float(totals[f"{task.name}/loss_sum"]) / max(count, 1.0),
                                        manifest["splits"]["train"])
    if details or rows_sink:
        per_utterance = breakdowns.utterance_rows(jax.device_get(rows))
        if rows_sink:
            rows_sink(per_utterance)
        if details:
            _add_breakdowns(report, per_utterance, config, manifest, split, top_speakers)
    return report


def task_report(task: Task, stats: Mapping[str, np.ndarray], loss: float, train: Mapping) -> dict:
    """One task's report from its summed ``metrics.statistics``: ``kind``, the scores of
    ``metrics.SCORES[kind]``, ``support``, the mean ``loss`` and a baseline from the training
    split (``train``, its manifest entry). classification: ``majority_baseline`` (always the
    training majority class), ``labels``, ``confusion`` [true][predicted] and ``per_class``
    scores; multilabel: ``majority_baseline`` (each label as in most training utterances),
    ``labels`` and ``per_label`` scores; regression: ``range`` and ``mean_baseline`` (always
    the training mean)."""
    scores = metrics.task_scores(task, stats)
    details = scores.pop("per_label", None)
    report = {"kind": task.kind, **scores, "loss": loss}
    if task.kind == REGRESSION:
        mean = train["value_stats"][task.name].get("mean", sum(task.value_range) / 2)  # none labelled: the middle
        return {**report, "range": list(task.value_range),
                "mean_baseline": metrics.constant_regression_scores(task, stats, mean)}
    counts = np.array([train["class_counts"][task.name].get(label, 0) for label in task.labels])
    if task.kind == MULTILABEL:
        applies = 2 * counts > records.labelled_count(train, task.name)
        majority = metrics.constant_multilabel_scores(stats["label_counts"], scores["support"], applies)
        per_label = {label: {k: v[i].item() for k, v in details.items()} for i, label in enumerate(task.labels)}
        return {**report, "labels": list(task.labels), "majority_baseline": majority, "per_label": per_label}
    confusion = np.asarray(stats["confusion"])
    majority = metrics.constant_prediction_scores(confusion.sum(1), int(np.argmax(counts)))
    per_class = metrics.per_class(confusion)
    return {**report, "majority_baseline": {k: majority[k] for k in metrics.SCORES[CLASSIFICATION]},
            "labels": list(task.labels), "confusion": confusion.tolist(),
            "per_class": {label: {k: v[i].item() for k, v in per_class.items()} for i, label in enumerate(task.labels)}}


def _add_breakdowns(report: dict, rows: dict, config, manifest, split: str, top_speakers: int) -> None:
    dialogues = records.DialogueSource(config.data.dir, split, manifest)
    tasks = resolve_tasks(config.tasks, manifest)
    labelled = np.any([t.is_labelled(rows[f"label/{t.name}"]) for t in tasks], axis=0)
    groups = {"by_speaker": breakdowns.speaker_groups(rows, dialogues, top_speakers, labelled),
              "by_modalities": breakdowns.modality_patterns(rows, config.model.modalities)}
    for task in tasks:
        for key, members in groups.items():
            report[task.name][key] = breakdowns.group_scores(members, rows[f"label/{task.name}"],
                                                             rows[f"predicted/{task.name}"], task)


# The baseline column of each kind's table: (report key, score).
_BASELINE = {CLASSIFICATION: ("majority_baseline", "macro_f1"), MULTILABEL: ("majority_baseline", "macro_f1"),
             REGRESSION: ("mean_baseline", "mse")}


def format_table(report: Mapping, title: str) -> str:
    """The scores of each task, one table per kind (with its baseline's headline score)."""
    lines = [title]
    for kind in KINDS:
        tasks = {t: r for t, r in report.items() if metrics.kind_of(r) == kind}
        if not tasks:
            continue
        key, score = _BASELINE[kind]
        baseline = f"{key.split('_')[0]} {score}"
        names = metrics.SCORES[kind]
        lines.append(f"{'task':<20}" + "".join(f"{k:>12}" for k in names) + f"{'support':>9}{baseline:>19}")
        for task, r in tasks.items():
            lines.append(f"{task:<20}" + "".join(f"{r[k]:>12.4f}" for k in names)
                         + f"{r['support']:>9d}{r[key][score]:>19.4f}")
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
