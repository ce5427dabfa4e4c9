"""Metrics as sums and counts (exact across devices and hosts), and scores computed from them.

Classification scores come from a confusion matrix ``[true, predicted]`` and follow
scikit-learn's ``zero_division=0`` convention: a class never predicted has precision 0, a class
that never occurs has recall 0, and F1 is 0 where precision + recall is 0. Macro-F1 averages over
the classes that occur in the truth or the predictions (scikit-learn's default label set); a
class seen in neither has no defined F1 and is left out. Weighted-F1 weights by true counts, so
such a class weighs nothing either way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def confusion_matrix(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """int32 [classes, classes] counts of (true, predicted) over labelled positions.

    logits: [..., classes]; labels: int32 [...], negative where unlabelled.
    """
    num_classes = logits.shape[-1]
    predicted = jnp.argmax(logits, -1)
    valid = labels >= 0
    index = jnp.where(valid, labels * num_classes + predicted, num_classes * num_classes)
    counts = jnp.bincount(index.reshape(-1), length=num_classes * num_classes + 1)
    return counts[:-1].reshape(num_classes, num_classes).astype(jnp.int32)


def confusion_from_predictions(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [classes, classes] counts of (true, predicted) on the host; labels: int [N] (all
    labelled), predicted: int [N]."""
    index = np.asarray(labels) * num_classes + np.asarray(predicted)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 (float64 [classes]), support and predicted counts (int64
    [classes]) from a [true, predicted] confusion matrix, with ``zero_division=0``."""
    confusion = np.asarray(confusion, np.float64)
    true_counts, predicted_counts = confusion.sum(1), confusion.sum(0)
    hits = np.diag(confusion)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted_counts > 0, hits / predicted_counts, 0.0)
        recall = np.where(true_counts > 0, hits / true_counts, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
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
