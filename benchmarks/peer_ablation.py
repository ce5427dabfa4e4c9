"""Which parts of the linear peer carry its validation score, beside what mmjax does instead::

    python benchmarks/peer_ablation.py --data_dir=data_cache/cmma --epochs=60

Each variant changes ``mmjax.linear_peer`` (TF-IDF with sublinear term frequency and L2-normalised
rows; class-balanced logistic regression, converged, C per task chosen on validation by
``linear_peer.select``) and prints, per task, its best validation headline score and the C (or
epoch) that gave it, and their mean over the tasks:

* ``peer``: the peer itself.
* ``no_idf``: every n-gram weighs the same (``use_idf=False``).
* ``raw_tf``: raw n-gram counts instead of 1 + log(count) (``sublinear_tf=False``).
* ``mean_counts``: all three changed: raw counts divided by their sum, no IDF, i.e. the mean of
  the utterance's n-gram vectors, as mmjax pools its n-gram encoder's states (which also apply a
  LayerNorm at each position). Rows are scaled by one constant so that a typical row has the
  peer's norm and the same C grid fits.
* ``early_stopped``: the peer's features and class weights, trained by per-sample SGD (scikit-
  learn's ``SGDClassifier``: one-vs-rest log loss, constant step, a negligible penalty) instead
  of converged L2-penalised softmax regression; each task read at its best validation epoch, so
  early stopping is its only regulariser, as it is mmjax's main one. It picks among ``--epochs``
  epochs where the peer picks among 7 values of C: the more optimistic figure of the two.

Validation only: the test split is never read. Classification tasks only.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import FeatureUnion
from sklearn.utils.class_weight import compute_class_weight

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmjax import linear_peer, metrics  # noqa: E402
from mmjax.data import records  # noqa: E402
from mmjax.tasks import CLASSIFICATION, Task, corpus_tasks  # noqa: E402

VECTORIZER_CHANGES = {"peer": {}, "no_idf": {"use_idf": False}, "raw_tf": {"sublinear_tf": False},
                      "mean_counts": {"use_idf": False, "sublinear_tf": False, "norm": "l1"},
                      "early_stopped": {}}  # the peer's features
VARIANTS = tuple(VECTORIZER_CHANGES)


def tfidf_parts(v) -> list[TfidfVectorizer]:
    """The TF-IDF vectorizers of the peer's vectorizer (one for CJK text, word and character for latin)."""
    return [t for _, t in v.transformer_list] if isinstance(v, FeatureUnion) else [v]


def vectorizer(analyzer: str, changes: dict):
    """The peer's vectorizer with ``changes`` set on each of its TF-IDF vectorizers."""
    v = linear_peer.make_vectorizer(analyzer)
    for part in tfidf_parts(v):
        part.set_params(**changes)
    return v


def best_over_c(task: Task, x_train, y_train, x_val, y_val) -> tuple[float, str]:
    """The best validation score of the converged logistic regression (``linear_peer.select``)."""
    _, chosen = linear_peer.select(task, x_train, y_train, x_val, y_val)
    return chosen["validation_score"], f"C={chosen['C']:g}"


def best_over_epochs(task: Task, x_train, y_train, x_val, y_val, epochs: int, seed: int = 0,
                     batch: int = 256, step: float = 0.05) -> tuple[float, str]:
    """The best validation score over ``epochs`` epochs of per-sample SGD (constant step; each
    epoch a new shuffle, fed in chunks of ``batch``) on the class-balanced one-vs-rest log loss
    with a negligible penalty: early stopping is the only regulariser."""
    classes = np.unique(y_train)
    weights = dict(zip(classes, compute_class_weight("balanced", classes=classes, y=y_train)))
    model = SGDClassifier(loss="log_loss", alpha=1e-6, class_weight=weights, learning_rate="constant",
                          eta0=step, random_state=seed)
    rng, found = np.random.default_rng(seed), []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            model.partial_fit(x_train[rows], y_train[rows], classes=classes)
        score = metrics.host_scores(task, model.predict(x_val), y_val)[metrics.HEADLINE[task.kind]]
        found.append((score, f"epoch {epoch}"))
    return max(found, key=lambda f: f[0])  # ties: the earliest epoch


def run(data_dir: str, variants=VARIANTS, epochs: int = 30) -> dict[str, dict[str, tuple[float, str]]]:
    """{variant: {task: (best validation score, where)}} for the corpus's classification tasks."""
    manifest = records.load_manifest(data_dir)
    tasks = {t: task for t, task in corpus_tasks(manifest).items() if task.kind == CLASSIFICATION}
    train_texts, train_y = linear_peer.read_split(data_dir, "train", manifest, tasks)
    val_texts, val_y = linear_peer.read_split(data_dir, "validation", manifest, tasks)
    fit_texts = linear_peer.labelled_texts(tasks, train_texts, train_y)
    analyzer = linear_peer.detect_analyzer(fit_texts)
    results = {}
    for name in variants:
        v = vectorizer(analyzer, VECTORIZER_CHANGES[name]).fit(fit_texts)  # as the peer fits it
        x_train, x_val = v.transform(train_texts), v.transform(val_texts)
        if name == "mean_counts":  # the peer's rows have norm 1 per TF-IDF part
            scale = np.sqrt(len(tfidf_parts(v))) / np.median(np.sqrt(x_train.multiply(x_train).sum(1)).A1)
            x_train, x_val = x_train * scale, x_val * scale
        results[name] = {}
        for t, task in tasks.items():
            tr, va = task.is_labelled(train_y[t]), task.is_labelled(val_y[t])
            data = (x_train[tr], train_y[t][tr], x_val[va], val_y[t][va])
            results[name][t] = (best_over_epochs(task, *data, epochs=epochs) if name == "early_stopped"
                                else best_over_c(task, *data))
        found = results[name]
        print(f"{name}: mean {100 * np.mean([s for s, _ in found.values()]):.2f}  "
              + ", ".join(f"{t} {100 * s:.1f} ({where})" for t, (s, where) in found.items()), flush=True)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"Comma-separated, of {VARIANTS}.")
    parser.add_argument("--epochs", type=int, default=30, help="SGD epochs of the early_stopped variant.")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; expected some of {list(VARIANTS)}")
    run(args.data_dir, variants, args.epochs)


if __name__ == "__main__":
    main()
