"""Validation macro-F1 of runs and of the linear peer on the utterances of frequent training
speakers and on the rest, to see whether a model leans on memorised speakers::

    python benchmarks/speaker_slices.py --data_dir=data_cache/cmma runs/cmma_s0 runs/cmma_s1 runs/cmma_s2

A speaker is frequent with at least ``--min_utterances`` training utterances. Each run is read at
each task's best validation step among its saved checkpoints; the peer (TF-IDF + class-balanced
logistic regression, ``mmjax.linear_peer``) at the C ``--peer_c`` gives per task (as
``mmjax.baseline --split=validation`` chose it). Also prints, for the validation and test splits,
the share of utterances of frequent speakers and of character 3-grams seen at least twice in
training: inputs only, no test label is read. This produced the README's CMMA figures of the
ninth session (frequent speakers: 17.8% of validation, 5.9% of test).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys

import numpy as np
from sklearn.metrics import f1_score

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import selection_transfer  # noqa: E402
from mmjax import linear_peer  # noqa: E402
from mmjax.data import records  # noqa: E402
from mmjax.tasks import corpus_tasks  # noqa: E402

SLICES = ("all", "frequent", "other")


def slice_scores(labels: np.ndarray, predicted: np.ndarray, labelled: np.ndarray, frequent: np.ndarray) -> dict:
    """{slice: macro-F1 in %} over the labelled utterances (bool [N]) of every utterance, of those
    of frequent speakers (bool [N]) and of the rest; labels, predicted: int [N]."""
    masks = {"all": labelled, "frequent": labelled & frequent, "other": labelled & ~frequent}
    return {name: 100 * f1_score(labels[m], predicted[m], average="macro") for name, m in masks.items()}


def speakers(data_dir: str, split: str, manifest) -> list[str]:
    """Every utterance's speaker, in record order."""
    source = records.DialogueSource(data_dir, split, manifest)
    return [s for i in range(len(source)) for s in source[i].speakers]


def overlap(texts, seen: collections.Counter) -> float:
    """Share of the character 3-grams of ``texts`` that occur at least twice in training."""
    grams = [t[i:i + 3] for t in texts for i in range(len(t) - 2)]
    return sum(seen[g] >= 2 for g in grams) / max(len(grams), 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="*")
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--min_utterances", type=int, default=5)
    parser.add_argument("--peer_c", default="sentiment=1,emotion=3,sarcasm=1,humor=0.1,emotion_sentiment=10,"
                        "sarcasm_humor=3", help="task=C,...: the peer's C per task.")
    parser.add_argument("--every", type=int, default=1, help="Use the saved steps that are multiples of this.")
    args = parser.parse_args(argv)
    manifest = records.load_manifest(args.data_dir)
    tasks = corpus_tasks(manifest)
    counts = collections.Counter(speakers(args.data_dir, "train", manifest))
    train_texts, train_y = linear_peer.read_split(args.data_dir, "train", manifest, tasks)
    seen = collections.Counter(t[i:i + 3] for t in train_texts for i in range(len(t) - 2))
    for split in ("validation", records.TEST_SPLIT):
        with records.reading_test_split() if split == records.TEST_SPLIT else contextlib.nullcontext():
            spk = speakers(args.data_dir, split, manifest)
            texts = linear_peer.read_split(args.data_dir, split, manifest, {})[0]
        print(f"{split}: utterances of frequent speakers {np.mean([counts[s] >= args.min_utterances for s in spk]):.3f},"
              f" character 3-grams seen twice in training {overlap(texts, seen):.3f}")
    val_speakers = speakers(args.data_dir, "validation", manifest)
    frequent = np.array([counts[s] >= args.min_utterances for s in val_speakers])
    c = {k: float(v) for k, v in (item.split("=") for item in args.peer_c.split(","))}
    texts, val_y = linear_peer.read_split(args.data_dir, "validation", manifest, tasks)
    vectorizer = linear_peer.make_vectorizer(linear_peer.detect_analyzer(train_texts))
    x_train, x_val = vectorizer.fit_transform(train_texts), vectorizer.transform(texts)
    peer = {}
    for name, task in tasks.items():
        fit = task.is_labelled(train_y[name])
        model = linear_peer.fit(task, c[name], x_train[fit], train_y[name][fit])
        peer[name] = slice_scores(val_y[name], model.predict(x_val), task.is_labelled(val_y[name]), frequent)
    report("peer", peer)
    runs = []
    for workdir in args.workdirs:
        by_step, _, run_tasks = selection_transfer.validation_rows(workdir, args.every)
        best = {}
        for task in run_tasks:
            for rows in by_step.values():
                who = np.array([counts[val_speakers[index]] >= args.min_utterances
                                for index in utterance_indices(rows["position"], args.data_dir, manifest)])
                labels = rows[f"label/{task.name}"]
                scores = slice_scores(labels, rows[f"predicted/{task.name}"], task.is_labelled(labels), who)
                if task.name not in best or scores["all"] > best[task.name]["all"]:
                    best[task.name] = scores
        runs.append(report(workdir, best))
    if len(runs) > 1:
        print("mean over the runs: " + ", ".join(f"{s} {np.mean([r[s] for r in runs]):.2f}" for s in SLICES))


def utterance_indices(position: np.ndarray, data_dir: str, manifest) -> list[int]:
    """Record-order utterance index of each row's (dialogue, turn) position (int [N, 2])."""
    turns = np.load(os.path.join(data_dir, "validation.turns.npy"))
    start = np.concatenate([[0], np.cumsum(turns)[:-1]])
    return (start[position[:, 0]] + position[:, 1]).tolist()


def report(name: str, scores: dict) -> dict:
    """Prints and returns {slice: the mean over the tasks of their macro-F1}."""
    means = {s: float(np.mean([v[s] for v in scores.values()])) for s in SLICES}
    print(f"{name}: mean macro-F1 of the tasks " + ", ".join(f"{s} {means[s]:.2f}" for s in SLICES))
    return means


if __name__ == "__main__":
    main()
