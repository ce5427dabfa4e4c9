"""Validation macro-F1 of runs and of the linear peer on the utterances of frequent training
speakers and on the rest, to see whether a model leans on memorised speakers::

    python benchmarks/speaker_slices.py --data_dir=data_cache/cmma runs/cmma_s0 runs/cmma_s1 runs/cmma_s2

A speaker is frequent with at least ``--min_utterances`` training utterances. Each run is read at
each task's best validation step among its saved checkpoints; the peer (TF-IDF + class-balanced
logistic regression, ``mmjax.linear_peer``) at the C it chooses on validation, as in
``mmjax.baseline``. Also prints, for the validation and test splits, the share of utterances of
frequent speakers and of character 3-grams seen at least twice in training: inputs only, no test
label is read. This produced the README's CMMA figures of the
ninth session (frequent speakers: 17.8% of validation, 5.9% of test).
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import selection_transfer  # noqa: E402
from mmjax import linear_peer, metrics  # noqa: E402
from mmjax.data import records  # noqa: E402
from mmjax.tasks import Task, corpus_tasks  # noqa: E402

SLICES = ("all", "frequent", "other")


def slice_scores(task: Task, labels: np.ndarray, predicted: np.ndarray, frequent: np.ndarray) -> dict:
    """{slice: macro-F1 in %} of a classification task over its labelled utterances, those of
    frequent speakers (bool [N]) and the rest; labels, predicted: int [N] (``metrics.host_scores``)."""
    masks = {"all": np.ones_like(frequent), "frequent": frequent, "other": ~frequent}
    return {name: 100 * metrics.host_scores(task, predicted[m], labels[m])["macro_f1"] for name, m in masks.items()}


def dialogue_speakers(data_dir: str, split: str, manifest) -> list[list[str]]:
    """Each dialogue's speakers, turn by turn, in record order."""
    source = records.DialogueSource(data_dir, split, manifest)
    return [source[i].speakers for i in range(len(source))]


def trigrams(texts) -> list[str]:
    """Every character 3-gram of ``texts``."""
    return [t[i:i + 3] for t in texts for i in range(len(t) - 2)]


def overlap(texts, seen: collections.Counter) -> float:
    """Share of the character 3-grams of ``texts`` that occur at least twice in training."""
    grams = trigrams(texts)
    return sum(seen[g] >= 2 for g in grams) / max(len(grams), 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="*")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--min_utterances", type=int, default=5)
    parser.add_argument("--every", type=int, default=1, help="Use the saved steps that are multiples of this.")
    args = parser.parse_args(argv)
    manifest = records.load_manifest(args.data_dir)
    tasks = corpus_tasks(manifest)
    counts = collections.Counter(s for d in dialogue_speakers(args.data_dir, "train", manifest) for s in d)
    is_frequent = {name: n >= args.min_utterances for name, n in counts.items()}
    train_texts, train_y = linear_peer.read_split(args.data_dir, "train", manifest, tasks)
    seen = collections.Counter(trigrams(train_texts))
    val_speakers = dialogue_speakers(args.data_dir, "validation", manifest)
    val_texts, val_y = linear_peer.read_split(args.data_dir, "validation", manifest, tasks)
    with records.reading_test_split():
        test_speakers = dialogue_speakers(args.data_dir, records.TEST_SPLIT, manifest)
        test_texts = linear_peer.read_split(args.data_dir, records.TEST_SPLIT, manifest, {})[0]
    for split, spk, texts in (("validation", val_speakers, val_texts), (records.TEST_SPLIT, test_speakers, test_texts)):
        share = np.mean([is_frequent.get(s, False) for d in spk for s in d])
        print(f"{split}: utterances of frequent speakers {share:.3f}, character 3-grams seen twice in training "
              f"{overlap(texts, seen):.3f}")
    frequent = np.array([is_frequent.get(s, False) for d in val_speakers for s in d])
    if frequent.all() or not frequent.any():  # one slice would be empty: its macro-F1 means nothing
        raise SystemExit(f"{args.data_dir}: {'every' if frequent.all() else 'no'} validation utterance comes from a "
                         f"speaker with at least --min_utterances={args.min_utterances} training utterances, so "
                         "one slice is empty: choose another --min_utterances")
    vectorizer, _ = linear_peer.fitted_vectorizer(tasks, train_texts, train_y)
    x_train, x_val = vectorizer.transform(train_texts), vectorizer.transform(val_texts)
    peer = {}
    for name, task in tasks.items():
        fit, va = task.is_labelled(train_y[name]), task.is_labelled(val_y[name])
        model, _ = linear_peer.select(task, x_train[fit], train_y[name][fit], x_val[va], val_y[name][va])
        peer[name] = slice_scores(task, val_y[name], model.predict(x_val), frequent)
    report("peer", peer)
    runs = []
    for workdir in args.workdirs:
        by_step, _, run_tasks = selection_transfer.validation_rows(workdir, args.every)
        best = {}
        for rows in by_step.values():
            who = np.array([is_frequent.get(val_speakers[d][t], False) for d, t in rows["position"].tolist()])
            for task in run_tasks:
                labels = rows[f"label/{task.name}"]
                scores = slice_scores(task, labels, rows[f"predicted/{task.name}"], who)
                if task.name not in best or scores["all"] > best[task.name]["all"]:
                    best[task.name] = scores
        runs.append(report(workdir, best))
    if len(runs) > 1:
        print("mean over the runs: " + ", ".join(f"{s} {np.mean([r[s] for r in runs]):.2f}" for s in SLICES))


def report(name: str, scores: dict) -> dict:
    """Prints and returns {slice: the mean over the tasks of their macro-F1}."""
    means = {s: float(np.mean([v[s] for v in scores.values()])) for s in SLICES}
    print(f"{name}: mean macro-F1 of the tasks " + ", ".join(f"{s} {means[s]:.2f}" for s in SLICES))
    return means


if __name__ == "__main__":
    main()
