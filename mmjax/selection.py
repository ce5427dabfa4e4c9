"""Model selection on the validation split: the score that picks checkpoints (the mean over tasks
of each task's ``config.selection_metric``, Pearson r for regression) and early stopping."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mmjax import checkpointing, metrics as metrics_lib
from mmjax.data import records
from mmjax.errors import ConfigError, MmjaxError
from mmjax.tasks import REGRESSION


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
