"""Model selection on the validation split: the score that picks checkpoints (the mean over tasks
of each task's ``config.selection_metric``, Pearson r for regression), early stopping, and what
a selection is worth on validation utterances it did not select on (``held_out``, from the
per-utterance rows a run saves at each validation)."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping

import numpy as np
from etils import epath

from mmjax import atomic, checkpointing, metrics as metrics_lib, saved_run
from mmjax.data import records
from mmjax.errors import ConfigError, MmjaxError
from mmjax.tasks import REGRESSION, resolve_tasks


def check_validation_split(config, manifest: Mapping) -> None:
    """Raises unless the validation split exists and labels every task of ``config.tasks``: the
    validation score that selects checkpoints averages every task's score."""
    split = manifest["splits"].get("validation")
    if split is None:
        raise ConfigError(f"the records at config.data.dir={config.data.dir!r} have no validation split, which "
                          "selects the best checkpoint; prepare them with one")
    unlabelled = [t for t in config.tasks if not records.labelled_count(split, t)]
    if unlabelled:
        raise ConfigError(f"config.tasks={tuple(config.tasks)}: the validation split of {config.data.dir!r} labels "
                          f"no utterance for {unlabelled}; the validation score needs every task; drop them "
                          "from config.tasks or label some validation utterances")


def task_validation_scores(report: dict, config) -> dict[str, float]:
    """{task: its model-selection score}: its validation ``config.selection_metric`` (the score a
    corpus reports; runs saved before the key existed selected by macro-F1), for a regression
    task its headline score (Pearson r)."""
    metric = config.get("selection_metric", "macro_f1")
    return {t: float(metrics_lib.headline(r) if metrics_lib.kind_of(r) == REGRESSION else r[metric])
            for t, r in report.items()}


def validation_score(report: dict, config) -> float:
    """Model-selection score: the mean over the tasks of ``task_validation_scores``."""
    return float(np.mean(list(task_validation_scores(report, config).values())))


def stopped_early(config, mngr, step: int, task_scores: dict[str, float] | None = None) -> int | None:
    """The best step, when the ``config.early_stopping_patience`` (> 0) checkpoints saved after it,
    up to ``step``, have not improved its validation score; else None. It is read from the
    checkpoints, so a resumed run that had stopped early stays stopped. ``task_scores``: the
    per-task scores of ``step`` when its save may still be in flight (the earlier saves are
    finished: each save waits for the one before)."""
    patience = config.early_stopping_patience
    if not patience:
        return None
    if checkpointing.per_task_selection(config):  # stalled when no task has improved
        try:
            unfinished = {step: task_scores} if task_scores is not None else None
            best = max(checkpointing.best_task_steps(mngr, config.tasks, unfinished).values())
        except MmjaxError:  # a run begun before checkpoints carried each task's score: not yet
            return None
    else:
        best = checkpointing.best_step(mngr)
    if best is not None and step - best >= patience * config.checkpoint_every_steps:
        return best
    return None


ROWS_DIR = "validation_rows"  # <workdir>/validation_rows/step_<N>.npz: each validation's per-utterance rows


def save_rows(workdir: str, step: int, rows: Mapping[str, np.ndarray]) -> None:
    """Writes one validation's per-utterance rows (``breakdowns.utterance_rows``: position [N, 2],
    label/<task>, predicted/<task>, ...) as ``<workdir>/validation_rows/step_<step>.npz``."""
    directory = epath.Path(workdir) / ROWS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    atomic.write_atomically(directory / f"step_{step}.npz", lambda f: np.savez_compressed(f, **rows), binary=True)


def saved_rows(workdir: str) -> dict[int, dict[str, np.ndarray]]:
    """{step: rows} of every validation ``save_rows`` wrote for the run in ``workdir`` ({} if none)."""
    directory, out = epath.Path(workdir) / ROWS_DIR, {}
    for path in directory.glob("step_*.npz") if directory.exists() else ():
        match = re.fullmatch(r"step_(\d+)\.npz", path.name)
        if match:
            try:
                with np.load(path, allow_pickle=False) as saved:
                    out[int(match[1])] = dict(saved)
            except (OSError, ValueError, zipfile.BadZipFile) as e:
                raise MmjaxError(f"{str(path)!r} is not a readable rows file ({e}); delete it") from None
    return dict(sorted(out.items()))


def rows_scores(rows: Mapping[str, np.ndarray], keep: np.ndarray, tasks, config) -> dict[str, float]:
    """{task: its selection score} over the utterances ``keep`` (bool [N]) of one validation's rows."""
    report = {}
    for task in tasks:
        labels, predicted = rows[f"label/{task.name}"][keep], rows[f"predicted/{task.name}"][keep]
        labelled = task.is_labelled(labels)
        report[task.name] = {"kind": task.kind, **metrics_lib.host_scores(task, predicted[labelled], labels[labelled])}
    return task_validation_scores(report, config)


def random_halves(dialogue: np.ndarray, halvings: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``halvings`` random halves A of the dialogue indices in ``dialogue``: int arrays."""
    ids = np.unique(dialogue)
    return [rng.choice(ids, len(ids) // 2, replace=False) for _ in range(halvings)]


def held_out(candidates: Mapping, tasks, config, halves: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(joint, per-task) scores on half B of each halving of the validation dialogues (``halves``:
    the dialogue indices of each half A), each rule having selected among ``candidates`` ({step or
    other candidate: rows}) on half A: float [len(halves)] each. Joint: the one candidate with the
    best mean score on A; per task: each task at its own best candidate on A."""
    joint, per_task = [], []
    for half in halves:
        scores = {}
        for candidate, rows in candidates.items():
            a = np.isin(rows["position"][:, 0], half)
            scores[candidate] = (rows_scores(rows, a, tasks, config), rows_scores(rows, ~a, tasks, config))
        best = max(scores, key=lambda c: np.mean(list(scores[c][0].values())))
        joint.append(np.mean(list(scores[best][1].values())))
        per_task.append(np.mean([scores[max(scores, key=lambda c: scores[c][0][t.name])][1][t.name] for t in tasks]))
    return np.array(joint), np.array(per_task)


HALVINGS = 20  # random halvings of the validation dialogues behind a held-out score


def held_out_score(workdir: str, config, tasks=None, halvings: int = HALVINGS, seed: int = 0) -> float | None:
    """What the run's checkpoint selection (``config.checkpoint_selection``) is worth on validation
    utterances it did not select on: over ``halvings`` random halvings of the validation dialogues
    (the same for every run of a corpus with the same ``seed``), the rule selects among the run's
    saved steps (multiples of ``config.checkpoint_every_steps`` and the last) on half A, scored on
    half B; the mean over halvings. None when the run saved no validation rows. ``tasks``: the
    run's (``mmjax.tasks.Task``), by default resolved from the records manifest it recorded."""
    rows = saved_rows(workdir)
    if not rows:
        return None
    if tasks is None:
        tasks = resolve_tasks(config.tasks, saved_run.load_manifest(workdir))
    last = max(rows)
    candidates = {step: r for step, r in rows.items() if step % config.checkpoint_every_steps == 0 or step == last}
    halves = random_halves(rows[last]["position"][:, 0], halvings, np.random.default_rng(seed))
    joint, per_task = held_out(candidates, tasks, config, halves)
    return float((per_task if checkpointing.per_task_selection(config) else joint).mean())
