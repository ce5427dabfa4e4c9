"""How much of a checkpoint-selection rule's gain survives a split it did not select on, measured
on the validation split alone::

    python benchmarks/selection_transfer.py --every=100 runs/cmma_s0 runs/cmma_s1 runs/cmma_s2

Each run must have kept every checkpoint (train it with ``--config.max_checkpoints_to_keep``
above its number of checkpoints). Every saved step that is a multiple of ``--every`` predicts the
validation split once. Then, ``--halvings`` times per run, the validation dialogues are split at
random into halves A and B; each rule selects on A and is scored on B by the mean over tasks of
the run's selection score (``config.selection_metric``; Pearson r for regression):

* joint: the one step with the best mean score on A (``checkpoint_selection="joint"``);
* per task: each task at its own best step on A (``checkpoint_selection="per_task"``).

Prints each run's mean over its halvings and, over all halvings, the mean difference per task -
joint with its standard deviation. The test split is never read. This produced the figures of
README's CMMA section (+0.25 for per-task selection on CMMA, +0.11 on MELD).
"""

from __future__ import annotations

import argparse
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmjax import breakdowns, checkpointing, inputs, metrics, restored_run, setup as setup_lib  # noqa: E402
from mmjax import sharding, trainer  # noqa: E402
from mmjax.tasks import resolve_tasks  # noqa: E402


def validation_rows(workdir: str, every: int) -> tuple[dict[int, dict[str, np.ndarray]], object, list]:
    """({step: per-utterance validation rows (``breakdowns.utterance_rows``)}, config, tasks) for
    each saved step of ``workdir`` that is a multiple of ``every``."""
    mngr = checkpointing.manager(workdir, create=False)
    steps = [step for step in sorted(mngr.all_steps()) if step % every == 0]
    mngr.close()
    out, config, tasks = {}, None, None
    for step in steps:
        run = restored_run.restore(workdir, step)
        s, config = run.setup, run.config
        tasks = resolve_tasks(config.tasks, s.manifest)
        eval_step, batches = setup_lib.jit_eval_step(s), []
        with sharding.activate(s.mesh, s.rules):
            for batch in inputs.eval_batches(config, s.manifest, "validation", 0, 1):
                batches.append(jax.device_get(eval_step(run.kept[step], sharding.global_batch(batch, s.mesh))["rows"]))
        out[step] = breakdowns.utterance_rows(batches)
    return out, config, tasks


def selection_scores(rows: dict[str, np.ndarray], keep: np.ndarray, tasks, config) -> dict[str, float]:
    """{task: its selection score} over the utterances ``keep`` (bool [N]) of one step's rows."""
    report = {}
    for task in tasks:
        labels, predicted = rows[f"label/{task.name}"][keep], rows[f"predicted/{task.name}"][keep]
        labelled = task.is_labelled(labels)
        stats = metrics.host_statistics(task, predicted[labelled], labels[labelled])
        report[task.name] = {"kind": task.kind, **metrics.task_scores(task, stats)}
    return trainer.task_validation_scores(report, config)


def transfer(by_step: dict[int, dict[str, np.ndarray]], tasks, config, halvings: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(joint, per-task) scores on half B of each of ``halvings`` random halvings of the
    validation dialogues, each rule having selected on half A: float [halvings] each."""
    dialogue = next(iter(by_step.values()))["position"][:, 0]
    ids = np.unique(dialogue)
    joint, per_task = [], []
    for _ in range(halvings):
        a = np.isin(dialogue, rng.choice(ids, len(ids) // 2, replace=False))
        scores = {step: (selection_scores(rows, a, tasks, config), selection_scores(rows, ~a, tasks, config))
                  for step, rows in by_step.items()}
        best = max(scores, key=lambda step: np.mean(list(scores[step][0].values())))
        joint.append(np.mean(list(scores[best][1].values())))
        per_task.append(np.mean([scores[max(scores, key=lambda step: scores[step][0][t.name])][1][t.name]
                                 for t in tasks]))
    return np.array(joint), np.array(per_task)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--every", type=int, default=1, help="Use the saved steps that are multiples of this.")
    parser.add_argument("--halvings", type=int, default=20, help="Random halvings of the validation dialogues per run.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    differences = []
    for workdir in args.workdirs:
        by_step, config, tasks = validation_rows(workdir, args.every)
        if len(by_step) < 2:
            sys.exit(f"{workdir}: {len(by_step)} saved step(s) at multiples of {args.every}; nothing to select from "
                     "(train with --config.max_checkpoints_to_keep above the number of checkpoints)")
        joint, per_task = transfer(by_step, tasks, config, args.halvings, rng)
        differences.append(per_task - joint)
        print(f"{workdir}: steps {sorted(by_step)}; on the held-out half: joint {100 * joint.mean():.2f}, "
              f"per task {100 * per_task.mean():.2f}", flush=True)
    d = 100 * np.concatenate(differences)
    print(f"per task - joint over {len(d)} halvings: {d.mean():+.2f} (standard deviation {d.std(ddof=1):.2f})")


if __name__ == "__main__":
    main()
