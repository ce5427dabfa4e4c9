"""Confusion-matrix figures a person can read: class names on both axes, each cell's count and
share of its row, a title naming the task, split and step. Drawn with matplotlib's Agg canvas
(no display, no pyplot state), saved as PNG by ``evaluate`` and logged to TensorBoard at each
validation."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmjax import atomic


def confusion_figure(confusion: np.ndarray, labels: Sequence[str], title: str) -> Figure:
    """Rows: true classes, columns: predicted, in ``labels`` order; colour = share of the row (a
    class without examples is a grey row). ``confusion``: int [classes, classes]."""
    confusion = np.asarray(confusion, np.int64)
    n = len(labels)
    totals = confusion.sum(1, keepdims=True)
    shares = np.divide(confusion, totals, out=np.full(confusion.shape, np.nan), where=totals > 0)
    size = 1.6 + 0.75 * n
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    cmap = matplotlib.colormaps["Blues"].with_extremes(bad="0.85")  # grey: a class without examples
    image = axes.imshow(np.ma.masked_invalid(shares), cmap=cmap, vmin=0.0, vmax=1.0)
    for i in range(n):
        for j in range(n):
            share = shares[i, j]
            text = f"{confusion[i, j]:,}\n{share:.0%}" if np.isfinite(share) else "–"
            axes.text(j, i, text, ha="center", va="center", fontsize=8,
                      color="white" if np.isfinite(share) and share > 0.55 else "black")
    axes.set_xticks(range(n), labels, rotation=45 if max(map(len, labels)) > 4 else 0, ha="right")
    axes.set_yticks(range(n), [f"{label} ({int(t):,})" for label, t in zip(labels, totals[:, 0])])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true (utterances)")
    axes.set_title(title, fontsize=10)
    figure.colorbar(image, ax=axes, label="share of the true class", shrink=0.8)
    return figure


def save_png(figure: Figure, path: str) -> None:
    """Writes ``figure`` to ``path`` as PNG, atomically."""
    atomic.write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=100), binary=True)
