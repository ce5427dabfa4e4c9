"""Task specs: what mmjax predicts for each task, and how its labels are stored.

A task is data: each corpus declares its tasks in its records manifest (``"tasks"``: name -> a
declaration) and models, losses, metrics and predictions read them from there
(``corpus_tasks``). Three kinds:

* ``classification``: one of ordered label names, ``{"kind": "classification", "labels": [...]}``;
  stored as an int32 class id (index into ``Task.labels``), -1 where unlabelled. A *correlation
  task* is a classification task that also names the two tasks it relates (``"relates": [a, b]``,
  CMMA: how emotion and sentiment agree on a five-level scale -2..2); its head reads the joint
  representation of the two.
* ``regression``: a real number in a declared range, ``{"kind": "regression", "range": [lo, hi]}``
  (e.g. sentiment intensity in [-3, 3]); stored as float32, NaN where unlabelled.
* ``multilabel``: any subset of label names, ``{"kind": "multilabel", "labels": [...]}``; stored
  as int32 [labels] indicators (1: the label applies), all -1 where unlabelled.

``TASKS`` holds the built-in tasks that the CMMA, MELD, MUStARD, MMSA and synthetic converters
declare (the six classification tasks of the default configs and ``sentiment_intensity``); a
user's JSONL corpus may declare any others.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping

import numpy as np

from mmjax.errors import ConfigError, RecordError

CLASSIFICATION, REGRESSION, MULTILABEL = "classification", "regression", "multilabel"
KINDS = (CLASSIFICATION, REGRESSION, MULTILABEL)

UNLABELLED = -1  # a classification label's (and a multilabel row's) missing value; regression: NaN
RELATION_SCALE = ("-2", "-1", "0", "1", "2")


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    labels: tuple[str, ...] = ()  # classification: the classes in order; multilabel: the labels
    relates: tuple[str, str] | None = None  # set for correlation tasks
    kind: str = CLASSIFICATION
    value_range: tuple[float, float] | None = None  # regression: (low, high)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def outputs(self) -> int:
        """Width of the task's head: one logit per class or label, one value for regression."""
        return 1 if self.kind == REGRESSION else len(self.labels)

    @property
    def label_shape(self) -> tuple[int, ...]:
        """Shape of one utterance's stored label."""
        return (len(self.labels),) if self.kind == MULTILABEL else ()

    @property
    def label_dtype(self):
        return np.float32 if self.kind == REGRESSION else np.int32

    @property
    def missing(self) -> float:
        """The stored value of a missing label."""
        return math.nan if self.kind == REGRESSION else UNLABELLED

    def unlabelled(self, turns: int) -> np.ndarray:
        """[turns, *label_shape] labels, all missing."""
        return np.full((turns, *self.label_shape), self.missing, self.label_dtype)

    def is_labelled(self, labels):
        """bool [...] of labels [..., *label_shape]; numpy or jax arrays alike."""
        if self.kind == REGRESSION:
            return labels == labels  # False exactly at NaN
        return (labels[..., 0] if self.kind == MULTILABEL else labels) >= 0

    def to_unit(self, values):
        """Regression values -> [-1, 1] over the task's range (numpy or jax arrays)."""
        low, high = self.value_range
        return (values - (low + high) / 2) / ((high - low) / 2)

    def from_unit(self, outputs):
        """A regression head's outputs -> values, clipped to the task's range."""
        low, high = self.value_range
        return (low + high) / 2 + outputs.clip(-1.0, 1.0) * ((high - low) / 2)

    def declaration(self) -> dict:
        """This task's entry in the manifest's ``"tasks"`` section."""
        if self.kind == REGRESSION:
            return {"kind": REGRESSION, "range": list(self.value_range)}
        relates = {"relates": list(self.relates)} if self.relates else {}
        return {"kind": self.kind, "labels": list(self.labels), **relates}


TASKS: dict[str, Task] = {
    "sentiment": Task("sentiment", ("negative", "neutral", "positive")),
    "emotion": Task("emotion", ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")),
    "sarcasm": Task("sarcasm", ("none", "sarcastic")),
    "humor": Task("humor", ("none", "humor")),
    "emotion_sentiment": Task("emotion_sentiment", RELATION_SCALE, relates=("emotion", "sentiment")),
    "sarcasm_humor": Task("sarcasm_humor", RELATION_SCALE, relates=("sarcasm", "humor")),
    # CMU-MOSI/MOSEI's sentiment score (MMSA converter; CH-SIMS's lies in [-1, 1]) and the synthetic corpus's.
    "sentiment_intensity": Task("sentiment_intensity", kind=REGRESSION, value_range=(-3.0, 3.0)),
}


def to_manifest(tasks: Iterable[Task]) -> dict:
    """The manifest's ``"tasks"`` section declaring ``tasks``."""
    return {t.name: t.declaration() for t in tasks}


def is_finite_number(x) -> bool:
    """A finite int or float (not a bool): what a regression label or range bound may be."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def corpus_tasks(manifest: Mapping, where: str = "the records manifest") -> dict[str, Task]:
    """The tasks a records manifest declares, checked (errors name ``where``). Records written
    before tasks were declared list each task's labels alone: those are the built-in tasks."""
    section = manifest.get("tasks") or {}
    tasks = {}
    for name, spec in section.items():
        where_task = f"{where}: task {name!r}"
        if isinstance(spec, list):
            builtin = TASKS.get(name)
            spec = {"kind": CLASSIFICATION, "labels": spec,
                    **({"relates": list(builtin.relates)} if builtin and builtin.relates else {})}
        if not isinstance(spec, dict):
            raise RecordError(f"{where_task} is declared as {spec!r}; expected an object such as "
                              '{"kind": "classification", "labels": ["no", "yes"]}')
        kind = spec.get("kind")
        if kind not in KINDS:
            raise RecordError(f"{where_task} is of kind {kind!r}; expected one of {list(KINDS)}")
        if kind == REGRESSION:
            bounds = spec.get("range")
            if not (isinstance(bounds, list) and len(bounds) == 2 and all(map(is_finite_number, bounds))
                    and bounds[0] < bounds[1]):
                raise RecordError(f"{where_task} has range {bounds!r}; expected [low, high], two numbers with "
                                  "low < high")
            tasks[name] = Task(name, kind=REGRESSION, value_range=(float(bounds[0]), float(bounds[1])))
            continue
        labels = spec.get("labels")
        least = 2 if kind == CLASSIFICATION else 1
        if not (isinstance(labels, list) and len(labels) >= least and all(isinstance(x, str) and x for x in labels)
                and len(set(labels)) == len(labels)):
            raise RecordError(f"{where_task} has labels {labels!r}; expected at least {least} distinct non-empty "
                              "names")
        relates = spec.get("relates")
        if relates is not None and not (kind == CLASSIFICATION and isinstance(relates, list) and len(relates) == 2
                                        and all(r in section and r != name for r in relates)):
            raise RecordError(f"{where_task} relates {relates!r}; expected a classification task relating two "
                              "other tasks of the corpus")
        tasks[name] = Task(name, tuple(labels), tuple(relates) if relates else None, kind)
    return tasks


def get_task(name: str, manifest: Mapping | None = None) -> Task:
    """The task ``name`` as ``manifest`` declares it (None: the built-in tasks)."""
    available = TASKS if manifest is None else corpus_tasks(manifest)
    try:
        return available[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; the corpus declares {list(available)}") from None


def resolve_tasks(names, manifest: Mapping | None = None) -> tuple[Task, ...]:
    """Tasks in the given order, as ``manifest`` declares them (None: the built-in tasks); a
    correlation task needs both tasks it relates."""
    available = TASKS if manifest is None else corpus_tasks(manifest)
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"config.tasks={names!r}: expected a sequence of task names")
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(f"config.tasks names {unknown}, which the corpus does not declare; it declares "
                          f"{list(available)}")
    tasks = tuple(available[n] for n in names)
    if not tasks:
        raise ConfigError("config.tasks is empty: name at least one of " + ", ".join(available))
    chosen = {t.name for t in tasks}
    for task in tasks:
        missing = [r for r in task.relates or () if r not in chosen]
        if missing:
            raise ConfigError(f"task {task.name!r} relates {task.relates}; add {missing} to config.tasks")
    return tasks
