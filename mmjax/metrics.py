"""Metrics as sums and counts (exact across devices and hosts), and scores computed from them.

Each task's kind (``mmjax.tasks``) has its sufficient statistics (``statistics``, summed over
batches, devices and hosts) and the scores its field reports (``task_scores``, ``SCORES``):

* classification: a confusion matrix -> accuracy, macro-F1, weighted-F1 (below).
* multi-label: per label true/false positives and false negatives, and exact matches -> exact
  match (subset accuracy), micro-, macro- (every label) and weighted-F1, per-label F1, as
  scikit-learn's with ``zero_division=0``; a label applies where its logit is > 0.
* regression: sums of moments -> MAE, MSE and Pearson r (0 where either side is constant);
  and MMSA's sentiment-intensity scores with the thresholds at the middle of the range (0 for
  [-3, 3]): ``acc2_has0``/``f1_has0`` (below vs at-or-above the middle), ``acc2_non0``/
  ``f1_non0`` (below vs above, utterances exactly at the middle left out), F1 weighted; and
  ``acc7``, accuracy over the range cut into seven levels (MMSA's rounding of values clipped to
  [-3, 3]). Predictions are clipped to the task's range.

Classification scores come from a confusion matrix ``[true, predicted]`` and follow
scikit-learn's ``zero_division=0`` convention: a class never predicted has precision 0, a class
that never occurs has recall 0, and F1 is 0 where precision + recall is 0. Macro-F1 averages over
the classes that occur in the truth or the predictions (scikit-learn's default label set); a
class seen in neither has no defined F1 and is left out. Weighted-F1 weights by true counts, so
such a class weighs nothing either way.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.tasks import CLASSIFICATION, MULTILABEL, REGRESSION, Task

SCORES = {CLASSIFICATION: ("accuracy", "macro_f1", "weighted_f1"),
          MULTILABEL: ("exact_match", "micro_f1", "macro_f1", "weighted_f1"),
          REGRESSION: ("mae", "mse", "corr", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc7")}
# Each kind's headline score (higher is better): what the seed summaries average and the
# breakdown tables show; regression tasks also select checkpoints by it.
HEADLINE = {CLASSIFICATION: "macro_f1", MULTILABEL: "macro_f1", REGRESSION: "corr"}


def kind_of(task_report: Mapping) -> str:
    """A task report's kind (reports saved before kinds existed: classification)."""
    return task_report.get("kind", CLASSIFICATION)


def headline(task_report: Mapping) -> float:
    """A task report's headline score (``HEADLINE`` of its kind)."""
    return task_report[HEADLINE[kind_of(task_report)]]


def predict(task: Task, outputs: jax.Array) -> jax.Array:
    """The model's decision from its outputs [..., task.outputs]: classification int32 [...]
    class ids; multilabel int32 [..., labels] indicators; regression float32 [...] values."""
    if task.kind == CLASSIFICATION:
        return jnp.argmax(outputs, -1).astype(jnp.int32)
    if task.kind == MULTILABEL:
        return (outputs > 0).astype(jnp.int32)
    return task.from_unit(outputs[..., 0].astype(jnp.float32))


def _confusion(truth, predicted, valid, num_classes: int, xp=jnp):
    """int32 [classes, classes] counts of (truth, predicted) class ids where ``valid``."""
    index = xp.where(valid, truth * num_classes + predicted, num_classes * num_classes).reshape(-1)
    size = num_classes * num_classes + 1
    counts = jnp.bincount(index, length=size) if xp is jnp else np.bincount(index, minlength=size)
    return counts[:-1].reshape(num_classes, num_classes).astype(xp.int32)


def confusion_matrix(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """int32 [classes, classes] counts of (true, predicted) over labelled positions.

    logits: [..., classes]; labels: int32 [...], negative where unlabelled.
    """
    valid = labels >= 0
    return _confusion(jnp.where(valid, labels, 0), jnp.argmax(logits, -1), valid, logits.shape[-1])


def _levels(task: Task, values, xp=jnp):
    """int32 [...]: values on seven levels 0..6 over the task's range (MMSA's Acc-7)."""
    return (xp.round(xp.clip(task.to_unit(values) * 3, -3, 3)) + 3).astype(xp.int32)


def statistics(task: Task, predicted, labels, xp=jnp) -> dict:
    """The sums ``task_scores`` needs, over the labelled positions; summable over batches.

    predicted: as from ``predict``; labels: as stored. ``xp``: ``jax.numpy`` (in the eval step)
    or ``numpy`` (on the host: ``host_statistics``), the same code either way.
    """
    valid = task.is_labelled(labels)
    if task.kind == CLASSIFICATION:
        return {"confusion": _confusion(xp.where(valid, labels, 0), predicted, valid, task.num_classes, xp)}
    if task.kind == MULTILABEL:
        truth, guess, rows = labels > 0, predicted > 0, valid[..., None]
        axes = tuple(range(labels.ndim - 1))
        counts = [xp.sum(rows & a & b, axes) for a, b in ((truth, guess), (~truth, guess), (truth, ~guess))]
        exact = xp.sum(valid & xp.all(truth == guess, -1))
        return {"label_counts": xp.stack(counts, -1).astype(xp.int32),  # [labels, (tp, fp, fn)]
                "exact": xp.stack([xp.sum(valid), exact]).astype(xp.int32)}
    y = xp.where(valid, labels, 0.0).astype(xp.float32)
    p = xp.where(valid, predicted, 0.0).astype(xp.float32)
    middle = sum(task.value_range) / 2
    pc, yc = p - middle, y - middle  # centred on the range: float32 sums of squares keep their digits
    moments = [valid, xp.abs(p - y), xp.square(p - y), pc, yc, pc * pc, yc * yc, pc * yc]
    return {"moments": xp.stack([xp.sum(xp.where(valid, m, 0.0)) for m in moments]).astype(xp.float32),
            "has0": _confusion((y >= middle).astype(xp.int32), (p >= middle).astype(xp.int32), valid, 2, xp),
            "non0": _confusion((y > middle).astype(xp.int32), (p > middle).astype(xp.int32),
                               valid & (y != middle), 2, xp),
            "seven": _confusion(_levels(task, y, xp), _levels(task, p, xp), valid, 7, xp)}


def _precision_recall_f1(hits: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-class (per-label) precision, recall and F1 from float64 counts of hits, predictions and
    true labels, with scikit-learn's ``zero_division=0``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, hits / predicted, 0.0)
        recall = np.where(true > 0, hits / true, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return precision, recall, f1


def _multilabel_scores(label_counts: np.ndarray, exact: np.ndarray) -> dict:
    tp, fp, fn = np.asarray(label_counts, np.float64).T
    precision, recall, f1 = _precision_recall_f1(tp, tp + fp, tp + fn)
    support = tp + fn
    micro = 2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()) if tp.sum() + fp.sum() + fn.sum() else 0.0
    labelled = int(exact[0])
    return {"exact_match": float(exact[1] / labelled) if labelled else float("nan"),
            "micro_f1": float(micro), "macro_f1": float(f1.mean()),
            "weighted_f1": float((f1 * support).sum() / support.sum()) if support.sum() else 0.0,
            "support": labelled,
            "per_label": {"precision": precision, "recall": recall, "f1": f1,
                          "support": support.astype(np.int64), "predicted": (tp + fp).astype(np.int64)}}


def _regression_scores(moments: np.ndarray, has0: np.ndarray, non0: np.ndarray, seven: np.ndarray) -> dict:
    n, abs_error, sq_error, sp, sy, spp, syy, spy = np.asarray(moments, np.float64)
    if not n:
        return {k: float("nan") for k in SCORES[REGRESSION]} | {"support": 0}
    var_p, var_y = spp / n - (sp / n) ** 2, syy / n - (sy / n) ** 2
    covariance = spy / n - sp * sy / n ** 2
    constant = min(var_p, var_y) <= 1e-12 * max(1.0, syy / n)
    two, two_non0 = scores(has0), scores(non0)
    return {"mae": float(abs_error / n), "mse": float(sq_error / n),
            "corr": 0.0 if constant else float(covariance / np.sqrt(var_p * var_y)),
            "acc2_has0": two["accuracy"], "f1_has0": two["weighted_f1"],
            "acc2_non0": two_non0["accuracy"], "f1_non0": two_non0["weighted_f1"],
            "acc7": scores(seven)["accuracy"], "support": int(n)}


def task_scores(task: Task, stats: Mapping[str, np.ndarray]) -> dict:
    """The scores of ``SCORES[task.kind]`` and ``support`` (labelled utterances) from summed
    ``statistics``; multi-label also ``per_label`` (float64/int64 [labels] arrays)."""
    stats = {k: np.asarray(v) for k, v in stats.items()}
    if task.kind == CLASSIFICATION:
        return scores(stats["confusion"])
    if task.kind == MULTILABEL:
        return _multilabel_scores(stats["label_counts"], stats["exact"])
    return _regression_scores(stats["moments"], stats["has0"], stats["non0"], stats["seven"])


def host_statistics(task: Task, predicted: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """``statistics`` computed on the host: numpy in, numpy out."""
    return statistics(task, np.asarray(predicted), np.asarray(labels), xp=np)


def host_scores(task: Task, predicted: np.ndarray, labels: np.ndarray) -> dict:
    """``task_scores`` of host predictions against stored labels (unlabelled positions ignored)."""
    return task_scores(task, host_statistics(task, predicted, labels))


def per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 (float64 [classes]), support and predicted counts (int64
    [classes]) from a [true, predicted] confusion matrix, with ``zero_division=0``."""
    confusion = np.asarray(confusion, np.float64)
    true_counts, predicted_counts = confusion.sum(1), confusion.sum(0)
    precision, recall, f1 = _precision_recall_f1(np.diag(confusion), predicted_counts, true_counts)
    return {"precision": precision, "recall": recall, "f1": f1,
            "support": true_counts.astype(np.int64), "predicted": predicted_counts.astype(np.int64)}


def scores(confusion: np.ndarray) -> dict[str, float]:
    """accuracy, macro_f1, weighted_f1 (and support) from a [true, predicted] confusion matrix."""
    c = per_class(confusion)
    total = c["support"].sum()
    seen = (c["support"] + c["predicted"]) > 0
    return {
        "accuracy": float(np.trace(np.asarray(confusion)) / total) if total else float("nan"),
        "macro_f1": float(c["f1"][seen].mean()) if seen.any() else float("nan"),
        "weighted_f1": float((c["f1"] * c["support"]).sum() / total) if total else float("nan"),
        "support": int(total),
    }


def constant_prediction_scores(true_counts, predicted_class: int) -> dict[str, float]:
    """Scores of always predicting ``predicted_class`` (e.g. the training majority class)."""
    counts = np.asarray(true_counts, np.float64)
    confusion = np.zeros((len(counts), len(counts)))
    confusion[:, predicted_class] = counts
    return scores(confusion)


def constant_multilabel_scores(label_counts: np.ndarray, labelled: int, applies: np.ndarray) -> dict[str, float]:
    """micro/macro/weighted-F1 of always predicting the label set ``applies`` (bool [labels]),
    from the true label counts of summed ``statistics`` and the labelled utterances."""
    tp, _, fn = np.asarray(label_counts, np.int64).T
    support, applies = tp + fn, np.asarray(applies, bool)
    constant = np.stack([np.where(applies, support, 0), np.where(applies, labelled - support, 0),
                         np.where(applies, 0, support)], -1)
    out = _multilabel_scores(constant, np.array([labelled, 0]))
    return {k: out[k] for k in ("micro_f1", "macro_f1", "weighted_f1")}


def constant_regression_scores(task: Task, stats: Mapping[str, np.ndarray], value: float) -> dict[str, float]:
    """MSE and the level scores of always predicting ``value`` (e.g. the training mean), from
    summed ``statistics``."""
    n, _, _, _, sy, _, syy, _ = np.asarray(stats["moments"], np.float64)  # y centred on the middle
    middle = sum(task.value_range) / 2
    two = constant_prediction_scores(np.asarray(stats["has0"]).sum(1), int(value >= middle))
    two_non0 = constant_prediction_scores(np.asarray(stats["non0"]).sum(1), int(value > middle))
    seven = constant_prediction_scores(np.asarray(stats["seven"]).sum(1), int(_levels(task, np.float32(value), np)))
    c = value - middle
    return {"mse": float((syy - 2 * c * sy) / n + c ** 2) if n else float("nan"),
            "acc2_has0": two["accuracy"], "f1_has0": two["weighted_f1"],
            "acc2_non0": two_non0["accuracy"], "f1_non0": two_non0["weighted_f1"], "acc7": seven["accuracy"]}
