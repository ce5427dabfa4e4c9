"""Task specs: the label sets mmjax predicts, and which tasks the correlation labels relate.

A task is data: each corpus declares its tasks in its records manifest (``"tasks"``: name ->
``{"kind": "classification", "labels": [...], "relates": [a, b]}``), and models, losses, metrics
and predictions read them from there (``corpus_tasks``). ``TASKS`` holds the built-in tasks that
the CMMA, MELD, MUStARD, MMSA and synthetic converters declare; a user's JSONL corpus may
declare any others.

Labels are stored as integer class ids (index into ``Task.labels``); -1 marks a missing label.
A *correlation task* annotates how two other tasks relate (CMMA: on a five-level scale -2..2,
strongly conflicting .. strongly consistent); its head reads the joint representation of the
two tasks it relates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from mmjax.errors import ConfigError, RecordError

CLASSIFICATION = "classification"  # the kind this mmjax trains; regression and multi-label are to come

RELATION_SCALE = ("-2", "-1", "0", "1", "2")


@dataclasses.dataclass(frozen=True)
class Task:
    name: str
    labels: tuple[str, ...]
    relates: tuple[str, str] | None = None  # set for correlation tasks

    @property
    def num_classes(self) -> int:
        return len(self.labels)


TASKS: dict[str, Task] = {
    "sentiment": Task("sentiment", ("negative", "neutral", "positive")),
    "emotion": Task("emotion", ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")),
    "sarcasm": Task("sarcasm", ("none", "sarcastic")),
    "humor": Task("humor", ("none", "humor")),
    "emotion_sentiment": Task("emotion_sentiment", RELATION_SCALE, relates=("emotion", "sentiment")),
    "sarcasm_humor": Task("sarcasm_humor", RELATION_SCALE, relates=("sarcasm", "humor")),
}


def to_manifest(tasks: Iterable[Task]) -> dict:
    """The manifest's ``"tasks"`` section declaring ``tasks``."""
    return {t.name: {"kind": CLASSIFICATION, "labels": list(t.labels), **({"relates": list(t.relates)}
                                                                          if t.relates else {})}
            for t in tasks}


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
        if not isinstance(spec, dict) or spec.get("kind") != CLASSIFICATION:
            kind = spec.get("kind") if isinstance(spec, dict) else spec
            raise RecordError(f"{where_task} is of kind {kind!r}; this mmjax trains {CLASSIFICATION!r} tasks "
                              "(regression and multi-label are not supported yet)")
        labels = spec.get("labels")
        if not (isinstance(labels, list) and len(labels) >= 2 and all(isinstance(x, str) and x for x in labels)
                and len(set(labels)) == len(labels)):
            raise RecordError(f"{where_task} has labels {labels!r}; expected at least two distinct non-empty names")
        relates = spec.get("relates")
        if relates is not None and not (isinstance(relates, list) and len(relates) == 2
                                        and all(r in section and r != name for r in relates)):
            raise RecordError(f"{where_task} relates {relates!r}; expected two other tasks of the corpus")
        tasks[name] = Task(name, tuple(labels), tuple(relates) if relates else None)
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
