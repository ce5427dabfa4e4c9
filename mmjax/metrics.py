"""Metrics as sums and counts (exact across devices and hosts), and scores computed from them.

Classification scores come from a confusion matrix ``[true, predicted]``. As in scikit-learn,
macro- and weighted-F1 average over the classes that occur in the truth or the predictions;
a class never seen in either has no defined F1 and is left out.
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


def scores(confusion: np.ndarray) -> dict[str, float]:
    """accuracy, macro_f1, weighted_f1 (and support) from a [true, predicted] confusion matrix."""
    confusion = np.asarray(confusion, np.float64)
    true_counts, predicted_counts = confusion.sum(1), confusion.sum(0)
    hits = np.diag(confusion)
    total = true_counts.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted_counts > 0, hits / predicted_counts, 0.0)
        recall = np.where(true_counts > 0, hits / true_counts, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    seen = (true_counts + predicted_counts) > 0
    return {
        "accuracy": float(hits.sum() / total) if total else float("nan"),
        "macro_f1": float(f1[seen].mean()) if seen.any() else float("nan"),
        "weighted_f1": float((f1 * true_counts).sum() / total) if total else float("nan"),
        "support": int(total),
    }


def constant_prediction_scores(true_counts, predicted_class: int) -> dict[str, float]:
    """Scores of always predicting ``predicted_class`` (e.g. the training majority class)."""
    counts = np.asarray(true_counts, np.float64)
    confusion = np.zeros((len(counts), len(counts)))
    confusion[:, predicted_class] = counts
    return scores(confusion)
