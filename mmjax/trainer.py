"""The training loop: state init or resume, periodic validation, checkpoints and logging (the
setup it runs is ``mmjax.setup``'s, the records ``mmjax.prepared_records``')."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import time
from collections.abc import Mapping

import jax
import numpy as np
import tensorboardX
from etils import epath

from mmjax import (atomic, checkpointing, evaluation, figures, inputs, metrics as metrics_lib, optim, preemption,
                   prepared_records, progress as progress_lib, report as report_lib, saved_run, setup as setup_lib,
                   sharding, workdir_lock)
from mmjax.data import records
from mmjax.errors import ConfigError, MmjaxError, TrainingDivergedError
from mmjax.tasks import REGRESSION

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)


def make_workdir(workdir: str) -> None:
    try:
        epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MmjaxError(f"cannot create workdir {workdir!r}: {e.strerror or e}") from e
    if atomic.is_local(workdir) and not os.access(workdir, os.W_OK):  # a bucket says so at the first write
        raise MmjaxError(f"workdir {workdir!r} is not writable")


class _MetricLog:
    """Collects the per-step metric dicts (device arrays: no host sync per step) of one interval.

    ``summary`` fetches them once (a sync: the rate ``steps_per_second`` is of finished steps, with
    validation and checkpoint time left out), checks that every loss and gradient was finite (the NaN
    guard: it runs before any checkpoint is written) and returns interval means.
    """

    def __init__(self, first_step: int):
        self._start_interval(first_step)

    def _start_interval(self, first_step: int) -> None:
        self.first_step, self.steps, self.started = first_step, [], time.perf_counter()

    def add(self, metrics):
        self.steps.append(metrics)

    def exclude_pause(self, seconds: float) -> None:
        """Leaves ``seconds`` spent on other work (validation, checkpoints) out of the rate."""
        self.started += seconds

    def summary(self, tasks) -> dict[str, float]:
        steps = jax.device_get(self.steps)
        for offset, m in enumerate(steps):
            bad = [k.removesuffix("/loss_sum") for k in [f"{t}/loss_sum" for t in tasks] if not np.isfinite(m[k])]
            bad += ["the gradient"] if not np.isfinite(m["grad_norm"]) else []
            bad += ["the tie regulariser"] if not np.isfinite(m["tie_penalty"]) else []
            if bad:
                raise TrainingDivergedError(
                    f"non-finite loss or gradient at step {self.first_step + offset} in {', '.join(bad)}; "
                    "stopped before writing a checkpoint (the latest checkpoint is from before it): "
                    "lower config.learning_rate or check the inputs")
        total = jax.tree.map(lambda *xs: float(np.sum(xs)), *steps)
        n = len(steps)
        out = {"loss": total["loss"] / n, "grad_norm": total["grad_norm"] / n,
               "tie_penalty": total["tie_penalty"] / n,
               "steps_per_second": n / (time.perf_counter() - self.started)}
        out.update({k: v / n for k, v in total.items() if k.startswith("log_variance/")})
        for task in tasks:
            count = max(total[f"{task}/count"], 1.0)
            out[f"{task}/loss"] = total[f"{task}/loss_sum"] / count
            if f"{task}/correct" in total:  # classification tasks
                out[f"{task}/accuracy"] = total[f"{task}/correct"] / count
        self._start_interval(self.first_step + n)
        return out


class _Writer:
    """Process 0's sinks: TensorBoard events and ``metrics.jsonl`` in the workdir.

    Training starts after step ``start`` (its checkpoint's, or 0). An interrupted run may have
    logged later steps, which this one logs again: both sinks drop them (TensorBoard's
    purge_step hides their events; ``metrics.jsonl`` keeps only its lines up to ``start``), so a
    reader finds one value per step and split. ``metrics.jsonl`` is rewritten whole at each log
    point (atomically: never a torn line, and a bucket, which cannot append, works alike).
    """

    def __init__(self, workdir: str, enabled: bool, start: int = 0):
        self.enabled = enabled
        if enabled:
            self.tensorboard = event_writer(workdir, start)
            self.path = epath.Path(workdir) / "metrics.jsonl"
            self.lines = _lines_up_to(self.path, start)

    def write(self, split: str, step: int, values: dict) -> None:
        if self.enabled:
            for key, value in values.items():
                self.tensorboard.add_scalar(f"{split}/{key}", value, step)
            self.tensorboard.flush()
            line = saved_run.json_safe({"step": step, "split": split, **values})
            self.lines.append(json.dumps(line, allow_nan=False) + "\n")
            atomic.write_atomically(self.path, lambda f: f.writelines(self.lines))

    def confusion_figures(self, step: int, report: dict) -> None:
        """Each task's validation confusion matrix as a TensorBoard figure (``validation/confusion/``)."""
        if self.enabled:
            for task, r in report.items():
                if "confusion" not in r:  # regression and multi-label tasks have none
                    continue
                figure = figures.confusion_figure(np.asarray(r["confusion"]), r["labels"],
                                                  f"{task}: validation split, step {step}")
                self.tensorboard.add_figure(f"validation/confusion/{task}", figure, step)
            self.tensorboard.flush()

    def close(self) -> None:
        if self.enabled:
            self.tensorboard.close()


def event_writer(workdir: str, start: int) -> tensorboardX.SummaryWriter:
    """TensorBoard's writer into ``workdir``/tensorboard, hiding the events after ``start``."""
    if not atomic.is_local(workdir):
        try:
            importlib.import_module("google.cloud.storage")  # what tensorboardX writes to a bucket with
        except ImportError:
            raise MmjaxError(f"workdir {workdir!r}: TensorBoard events in a bucket need google-cloud-storage "
                             "(pip install 'mmjax[cloud]')") from None
    return tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"), purge_step=start + 1)


def _logged_step(line: str) -> float:
    """The step of a metrics log line; a torn line (a crash mid-write) counts as after every step."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


def _lines_up_to(path: epath.Path, step: int) -> list[str]:
    """The lines of the metrics log ``path`` (if any) of steps up to ``step``."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return [line if line.endswith("\n") else line + "\n" for line in lines if _logged_step(line) <= step]


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


def train_and_evaluate(config, workdir: str):
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint; returns the state.

    Validation runs every ``eval_every_steps`` and at every checkpoint, whose score (mean
    validation macro-F1) decides which checkpoint is kept as the best one and, with
    ``early_stopping_patience``, when training stops. The test split is never read here
    (records.DialogueSource refuses it outside mmjax.evaluate). The workdir is locked while it
    trains (``mmjax.workdir_lock``): a second trainer on it is refused.
    """
    created = atomic.is_local(workdir) and not os.path.exists(workdir)
    make_workdir(workdir)
    try:
        with workdir_lock.hold(workdir, enabled=jax.process_index() == 0):
            return _train(config, workdir)
    except MmjaxError:
        if created:  # a bad config or corpus leaves no empty workdir behind (rmdir removes only an empty one)
            with contextlib.suppress(OSError):
                os.rmdir(workdir)
        raise


def build_checked(config) -> setup_lib.Setup:
    """The run's setup on its records (the synthetic corpus generated where wanted), with every
    check training makes before its first step."""
    s = setup_lib.build(config, manifest=prepared_records.load_or_prepare(config))
    check_validation_split(config, s.manifest)
    return s


def _train(config, workdir: str):
    s = build_checked(config)
    is_main = jax.process_index() == 0
    per_task = checkpointing.per_task_selection(config)
    mngr = checkpointing.manager(workdir, config.max_checkpoints_to_keep,
                                 best_of_tasks=config.tasks if per_task else ())
    start = mngr.latest_step()
    if start is not None:
        try:
            saved_run.check_resume_config(workdir, config)
        except ConfigError:
            mngr.close()
            raise
    if is_main:
        saved_run.save_run(workdir, config, s.manifest)
    data = sharding.DevicePrefetch(iter(inputs.train_dataset(config, s.manifest, jax.process_index(),
                                                             jax.process_count())), s.mesh,
                                   config.data.get("device_prefetch", 0))
    if start is None:
        state, start = setup_lib.initial_state(s), 0
    else:
        start, state = checkpointing.restore_newest(
            mngr, lambda step: checkpointing.restore(mngr, step, s.abstract_state, data), set_aside=True)
        if is_main:
            _log.info("resuming %s from its checkpoint at step %d", workdir, start)
        stalled_since = stopped_early(config, mngr, start)
        if stalled_since is not None:
            _note_early_stop(config, start, stalled_since, "stopped early")
            mngr.close()
            return state
        if start >= config.num_train_steps:  # nothing to train: no step to compile
            if is_main:
                _log.info(f"{workdir} is trained to config.num_train_steps={config.num_train_steps}")
            mngr.close()
            return state
    step_fn, stats = setup_lib.compile_train_step(s, config)
    if is_main:
        _log.info("%s", setup_lib.format_stats(stats))
        cut = records.tokens_cut(s.manifest, "train", config.data.max_tokens)
        if cut and cut[0]:
            _log.info(f"config.data.max_tokens={config.data.max_tokens} cuts {cut[0]:,} of {cut[1]:,} training "
                      "utterances (their later tokens are not read)")
    eval_fn = setup_lib.jit_eval_step(s)
    writer = _Writer(workdir, is_main, start)
    try:
        with preemption.Watch(mngr) as watch:
            state = _loop(config, s, state, start, step_fn, eval_fn, data, mngr, writer, watch)
    finally:  # also on errors: finish in-flight (good) saves and seal them before the process ends
        checkpointing.seal(mngr)
        mngr.close()
        writer.close()
    return state


def _loop(config, s: setup_lib.Setup, state, start: int, step_fn, eval_fn, data, mngr, writer, watch):
    """Steps ``start + 1 .. num_train_steps`` with logging, validation and checkpoints; stops
    after saving at the step where ``watch`` (a ``preemption.Watch``) says to."""
    log = _MetricLog(start + 1)
    learning_rate = optim.learning_rate_schedule(config)
    # Moved at log points, where the metrics are fetched: steps are dispatched asynchronously, so
    # counting them at dispatch would make the rate and ETA swing.
    progress = progress_lib.bar(total=config.num_train_steps, initial=start, desc="train", unit="step")
    for step in range(start + 1, config.num_train_steps + 1):
        state, metrics = step_fn(state, next(data))
        log.add(metrics)
        last = step == config.num_train_steps
        preempted = watch.reached(step)
        save = step % config.checkpoint_every_steps == 0 or last or preempted
        if step % config.log_every_steps == 0 or save:
            summary = log.summary(config.tasks)
            progress.update(step - progress.n)
            progress.set_postfix(loss=f"{summary['loss']:.4f}")
            # The rate of this step's update (optax counts updates from 0).
            writer.write("train", step, {**summary, "learning_rate": float(learning_rate(step - 1))})
        if step % config.eval_every_steps == 0 or save:
            jax.block_until_ready(metrics)  # the train steps so far are done: what follows is not training
            paused = time.perf_counter()
            report = evaluation.run(eval_fn, state.eval_params(), config, s.manifest, "validation", s.mesh, s.rules)
            score = validation_score(report, config)
            writer.write("validation", step, {"score": score, **{
                f"{t}/{k}": r[k] for t, r in report.items() for k in report_lib.scores_of(r)}})
            if config.get("log_confusion_figures", False):
                writer.confusion_figures(step, report)
            if jax.process_index() == 0:
                progress.write(evaluation.format_table(report, f"validation at step {step} (score {score:.4f})"))
            if save:
                task_scores = task_validation_scores(report, config)
                checkpointing.save(mngr, step, state, data, score, task_scores)
            # The logged rate and the bar's leave validation and checkpoint time out.
            pause_seconds = time.perf_counter() - paused
            log.exclude_pause(pause_seconds)
            progress_lib.exclude_pause(progress, pause_seconds)
        if save:
            if preempted and not last:
                progress.close()
                if jax.process_index() == 0:
                    _log.warning(f"stopped by {watch.reason} at step {step}, saved in its checkpoint; run the "
                                 "same command again to resume")
                return state
            stalled_since = stopped_early(config, mngr, step, task_scores)
            if stalled_since is not None:
                progress.close()
                _note_early_stop(config, step, stalled_since, "stopping early")
                return state
    progress.close()
    return state


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


def _note_early_stop(config, step: int, best: int, what: str) -> None:
    if jax.process_index() == 0:
        _log.info(f"{what} at step {step}: no better validation score than step {best}'s in "
                  f"config.early_stopping_patience={config.early_stopping_patience} checkpoints")
