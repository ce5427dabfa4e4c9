"""How much of a checkpoint-selection rule's gain survives a split it did not select on, measured
on the validation split alone::

    python benchmarks/selection_transfer.py --every=100 runs/cmma_s0 runs/cmma_s1 runs/cmma_s2

A run is read from the validation rows its training saved at each validation
(``mmjax.selection.saved_rows``); a run trained before those must have kept every checkpoint (train
it with ``--config.max_checkpoints_to_keep`` above its number of checkpoints), and every saved step
that is a multiple of ``--every`` then predicts the validation split once. Then, ``--halvings`` times per run, the validation dialogues are split at
random into halves A and B; each rule selects on A and is scored on B by the mean over tasks of
the run's selection score (``config.selection_metric``; Pearson r for regression):

* joint: the one step with the best mean score on A (``checkpoint_selection="joint"``);
* per task: each task at its own best step on A (``checkpoint_selection="per_task"``).

With ``--peer``, the linear peer (``mmjax.baseline``) is fitted once at every C of its grid and
selected the same way on the same halves: each task at its own best C on A, scored on B. The
peer's usual figure, its best C on the whole validation split, is as optimistic as a run's best
step; on the held-out halves the two compare without either selection's optimism.

Prints each run's mean over its halvings and, over all halvings, the mean difference per task -
joint (and per task - the peer) with its standard deviation. The test split is never read. This produced the figures of
README's CMMA section (+0.25 for per-task selection on CMMA, +0.11 on MELD).
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmjax import checkpointing, evaluation, linear_peer, restored_run, saved_run, selection  # noqa: E402
from mmjax import setup as setup_lib  # noqa: E402
from mmjax.data import records  # noqa: E402
from mmjax.tasks import resolve_tasks  # noqa: E402


def validation_rows(workdir: str, every: int) -> tuple[dict[int, dict[str, np.ndarray]], object, list]:
    """({step: per-utterance validation rows (``breakdowns.utterance_rows``)}, config, tasks) for
    each saved step of ``workdir`` that is a multiple of ``every``: the rows the run saved at its
    validations where it did (``selection.saved_rows``), else its checkpoints' predictions."""
    config = saved_run.load_config(workdir)
    interval = math.lcm(every, config.checkpoint_every_steps)  # the steps it saved

    def missing(steps) -> list[int]:  # a run's steps lacking from ``steps``, up to the last of them
        return sorted(set(range(interval, max(steps, default=0) + 1, interval)) - set(steps))

    saved = {step: rows for step, rows in selection.saved_rows(workdir).items() if step % interval == 0}
    if len(saved) >= 2 and not missing(saved):
        return saved, config, resolve_tasks(config.tasks, saved_run.load_manifest(workdir))
    mngr = checkpointing.manager(workdir, create=False)
    steps = [step for step in sorted(mngr.all_steps()) if step % every == 0]
    mngr.close()
    if len(steps) < 2 or missing(steps):  # the kept steps alone were chosen on the whole split already
        sys.exit(f"{workdir}: saved steps at multiples of {every}: {steps}, lacking {missing(steps)}; selection needs every "
                 "one (train with --config.max_checkpoints_to_keep above the number of checkpoints)")
    out, config, tasks = {}, None, None
    for step in steps:
        run = restored_run.restore(workdir, step)
        s, config = run.setup, run.config
        tasks = resolve_tasks(config.tasks, s.manifest)
        evaluation.run(setup_lib.jit_eval_step(s), run.kept[step], config, s.manifest, "validation", s.mesh, s.rules,
                       rows_sink=functools.partial(out.__setitem__, step))
    return out, config, tasks


def peer_rows(data_dir: str, tasks) -> dict[float, dict[str, np.ndarray]]:
    """{C: the linear peer's validation rows at that C} (``mmjax.baseline``'s features and models,
    ``linear_peer.grid``), shaped as ``validation_rows``'s."""
    manifest = records.load_manifest(data_dir)
    by_name = {t.name: t for t in tasks}
    train_texts, train_y = linear_peer.read_split(data_dir, "train", manifest, by_name)
    val_texts, val_y = linear_peer.read_split(data_dir, "validation", manifest, by_name)
    vectorizer, _ = linear_peer.fitted_vectorizer(by_name, train_texts, train_y)
    x_train, x_val = vectorizer.transform(train_texts), vectorizer.transform(val_texts)
    turns = records.DialogueSource(data_dir, "validation", manifest).turns  # [dialogues], read_split's order
    position = np.stack([np.repeat(np.arange(len(turns)), turns), np.concatenate([np.arange(n) for n in turns])],
                        -1).astype(np.int32)
    out = {c: {"position": position, **{f"label/{t}": y for t, y in val_y.items()}} for c in linear_peer.C_GRID}
    for name, task in by_name.items():
        fit = task.is_labelled(train_y[name])
        for c, _, predicted in linear_peer.grid(task, x_train[fit], train_y[name][fit], x_val):
            out[c][f"predicted/{name}"] = predicted
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workdirs", nargs="+")
    parser.add_argument("--every", type=int, default=1, help="Use the saved steps that are multiples of this.")
    parser.add_argument("--halvings", type=int, default=20, help="Random halvings of the validation dialogues per run.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--peer", action="store_true",
                        help="Also select the linear peer's C per task on each half A and score it on half B.")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    differences, against_peer, peers = [], [], {}
    for workdir in args.workdirs:
        by_step, config, tasks = validation_rows(workdir, args.every)
        halves = selection.random_halves(next(iter(by_step.values()))["position"][:, 0], args.halvings, rng)
        joint, per_task = selection.held_out(by_step, tasks, config, halves)
        differences.append(per_task - joint)
        line = (f"{workdir}: steps {sorted(by_step)}; on the held-out half: joint {100 * joint.mean():.2f}, "
                f"per task {100 * per_task.mean():.2f}")
        if args.peer:
            key = (config.data.dir, tuple(t.name for t in tasks))  # the runs may read different corpora
            if key not in peers:
                peers[key] = peer_rows(config.data.dir, tasks)
            _, peer_per_task = selection.held_out(peers[key], tasks, config, halves)
            against_peer.append(per_task - peer_per_task)
            line += f", the linear peer (C per task) {100 * peer_per_task.mean():.2f}"
        print(line, flush=True)
    d = 100 * np.concatenate(differences)
    print(f"per task - joint over {len(d)} halvings: {d.mean():+.2f} (standard deviation {d.std(ddof=1):.2f})")
    if args.peer:
        d = 100 * np.concatenate(against_peer)
        print(f"per task - the peer over {len(d)} halvings: {d.mean():+.2f} (standard deviation {d.std(ddof=1):.2f})")


if __name__ == "__main__":
    main()
