"""What training logs: interval means of the train step's metrics (with the NaN guard) and the
sinks that hold them, TensorBoard events and ``metrics.jsonl`` in the workdir."""

from __future__ import annotations

import importlib
import json
import os
import time

import jax
import numpy as np
import tensorboardX
from etils import epath

from mmjax import atomic, figures, saved_run
from mmjax.errors import MmjaxError, TrainingDivergedError


class IntervalMetrics:
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


class MetricWriter:
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
            self.lines = lines_up_to(self.path, start)

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


def logged_step(line: str) -> float:
    """The step of a metrics log line; a torn line (a crash mid-write) counts as after every step."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


def lines_up_to(path: epath.Path, step: int) -> list[str]:
    """The lines of the metrics log ``path`` (if any) of steps up to ``step``."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    return [line if line.endswith("\n") else line + "\n" for line in lines if logged_step(line) <= step]
