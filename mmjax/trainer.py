"""The training loop: state init or resume, periodic validation, checkpoints and logging (the
setup it runs is ``mmjax.setup``'s, the records ``mmjax.prepared_records``')."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time

import jax
from etils import epath

from mmjax import (atomic, checkpointing, evaluation, inputs, metric_log, optim, preemption, prepared_records,
                   progress as progress_lib, report as report_lib, saved_run, selection, setup as setup_lib,
                   sharding, workdir_lock)
from mmjax.data import records
from mmjax.errors import ConfigError, MmjaxError

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)


def make_workdir(workdir: str) -> None:
    try:
        epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MmjaxError(f"cannot create workdir {workdir!r}: {e.strerror or e}") from e
    if atomic.is_local(workdir) and not os.access(workdir, os.W_OK):  # a bucket says so at the first write
        raise MmjaxError(f"workdir {workdir!r} is not writable")


def train_and_evaluate(config, workdir: str):
    """Trains ``config`` in ``workdir``, resuming from its latest checkpoint; returns the state.

    Validation runs every ``eval_every_steps`` and at every checkpoint, whose score
    (``selection.validation_score``; under per-task selection also each task's own) decides which
    checkpoints are kept as the best and, with
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
    selection.check_validation_split(config, s.manifest)
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
        stalled_since = selection.stopped_early(config, mngr, start)
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
    writer = metric_log.MetricWriter(workdir, is_main, start)
    try:
        with preemption.Watch(mngr) as watch:
            state = _loop(config, workdir, s, state, start, step_fn, eval_fn, data, mngr, writer, watch)
    finally:  # also on errors: finish in-flight (good) saves and seal them before the process ends
        checkpointing.seal(mngr)
        mngr.close()
        writer.close()
    return state


def _loop(config, workdir: str, s: setup_lib.Setup, state, start: int, step_fn, eval_fn, data, mngr, writer, watch):
    """Steps ``start + 1 .. num_train_steps`` with logging, validation and checkpoints; stops
    after saving at the step where ``watch`` (a ``preemption.Watch``) says to."""
    log = metric_log.IntervalMetrics(start + 1)
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
            # Each validation's predictions are kept (a few bytes per utterance), so what selecting a step
            # is worth can be measured on validation utterances it did not select on (selection.held_out).
            sink = (functools.partial(selection.save_rows, workdir, step) if jax.process_count() == 1 else None)
            report = evaluation.run(eval_fn, state.eval_params(), config, s.manifest, "validation", s.mesh, s.rules,
                                    rows_sink=sink)
            score = selection.validation_score(report, config)
            writer.write("validation", step, {"score": score, **{
                f"{t}/{k}": r[k] for t, r in report.items() for k in report_lib.scores_of(r)}})
            if config.get("log_confusion_figures", False):
                writer.confusion_figures(step, report)
            if jax.process_index() == 0:
                progress.write(evaluation.format_table(report, f"validation at step {step} (score {score:.4f})"))
            if save:
                task_scores = selection.task_validation_scores(report, config)
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
            stalled_since = selection.stopped_early(config, mngr, step, task_scores)
            if stalled_since is not None:
                progress.close()
                _note_early_stop(config, step, stalled_since, "stopping early")
                return state
    progress.close()
    return state


def _note_early_stop(config, step: int, best: int, what: str) -> None:
    if jax.process_index() == 0:
        _log.info(f"{what} at step {step}: no better validation score than step {best}'s in "
                  f"config.early_stopping_patience={config.early_stopping_patience} checkpoints")
