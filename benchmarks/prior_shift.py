"""Per-class validation scores of trained runs, and whether shifting their decisions by the class
prior helps, measured on the validation split alone::

    python benchmarks/prior_shift.py runs/cmma/default_s0 runs/cmma/default_s1 runs/cmma/default_s2

Each run predicts the validation split with each task at its best step (``--step=best``). Per task
it prints each class's precision, recall and F1, averaged over the runs. Then it tests a post-hoc
logit adjustment (Menon et al., ICLR 2021): predict argmax(log p − τ·log prior), with the prior
taken from the training split's class counts. The validation dialogues are halved at random
``--halvings`` times per run; τ is chosen from a grid on one half and scored on the other. It
prints each task's mean change of macro-F1 and the run's mean over tasks. The test split is
never read. This produced README's per-class comparison on CMMA (tenth session).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmjax import inputs, metrics, prediction, restored_run  # noqa: E402
from mmjax.tasks import CLASSIFICATION, Task, corpus_tasks  # noqa: E402

TAUS = np.linspace(-1.0, 2.0, 31)


def validation_probabilities(workdir: str) -> tuple[dict, np.ndarray, dict]:
    """({task name: (Task, float [N, C] probabilities, int [N] labels)} over every validation
    utterance, int [N] dialogue of every utterance, manifest)."""
    run = restored_run.restore(workdir, "best")
    manifest = run.setup.manifest
    dialogues = inputs.window_source(run.config, manifest, "validation").dialogues
    probs = prediction.probabilities(run, dialogues, progress=False)
    which = np.concatenate([np.full(dialogues[i].num_turns, i) for i in range(len(dialogues))])
    tasks, out = corpus_tasks(manifest), {}
    for name in run.config.tasks:
        if tasks[name].kind != CLASSIFICATION:
            continue
        p = np.concatenate([d[name] for d in probs])
        y = np.concatenate([np.asarray(dialogues[i].labels[name]) for i in range(len(dialogues))])
        out[name] = (tasks[name], p, y)
    return out, which, manifest


def shifted_predictions(log_p: np.ndarray, log_prior: np.ndarray, tau: float) -> np.ndarray:
    """argmax over classes of log p − τ·log prior; log_p: [N, C], log_prior: [C] -> int [N]."""
    return np.argmax(log_p - tau * log_prior, -1)


def confusion(task: Task, labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """[true, predicted] counts over the labelled utterances (``metrics.host_statistics``)."""
    return metrics.host_statistics(task, predicted, labels)["confusion"]


def halving_gain(task: Task, log_p, labels, dialogue, log_prior, halvings: int, rng) -> tuple[float, float]:
    """Mean change of macro-F1 (``metrics.scores``) on one half of the dialogues when τ is chosen
    on the other half, over ``halvings`` random halvings, and the median τ chosen."""
    ids = np.unique(dialogue)

    def score(mask, tau):
        predicted = shifted_predictions(log_p[mask], log_prior, tau)
        return metrics.scores(confusion(task, labels[mask], predicted))["macro_f1"]

    gains, taus = [], []
    for _ in range(halvings):
        chosen = np.isin(dialogue, rng.choice(ids, len(ids) // 2, replace=False))
        tau = max(TAUS, key=lambda t: score(chosen, t))
        gains.append(score(~chosen, tau) - score(~chosen, 0.0))
        taus.append(tau)
    return float(np.mean(gains)), float(np.median(taus))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--halvings", type=int, default=20)
    args = parser.parse_args(argv)
    per_class, gains = {}, {}
    for seed, workdir in enumerate(args.workdirs):
        outputs, dialogue, manifest = validation_probabilities(workdir)
        train_counts = manifest["splits"]["train"]["class_counts"]
        rng = np.random.default_rng(seed)
        for name, (task, p, y) in outputs.items():
            log_p = np.log(p + 1e-9)
            classes = metrics.per_class(confusion(task, y, log_p.argmax(-1)))
            per_class.setdefault(name, []).append(np.array([classes[k] for k in ("precision", "recall", "f1")]))
            counts = np.maximum([train_counts[name].get(label, 0) for label in task.labels], 1.0)  # no log 0
            gains.setdefault(workdir, {})[name] = halving_gain(task, log_p, y, dialogue, np.log(counts / counts.sum()),
                                                               args.halvings, rng)
    for name, scores in per_class.items():
        precision, recall, f1 = 100 * np.mean(scores, axis=0)
        print(f"{name} (validation, mean of {len(scores)} runs)")
        for i, label in enumerate(manifest["tasks"][name]["labels"]):
            print(f"  {label:<12} P {precision[i]:5.1f}  R {recall[i]:5.1f}  F1 {f1[i]:5.1f}")
    print("logit adjustment, τ chosen on half the validation dialogues, change of macro-F1 on the other half:")
    for workdir, by_task in gains.items():
        tasks = " ".join(f"{name} {100 * g:+.2f} (τ {tau:.1f})" for name, (g, tau) in by_task.items())
        print(f"  {workdir}: mean {100 * np.mean([g for g, _ in by_task.values()]):+.2f} | {tasks}")


if __name__ == "__main__":
    main()
