"""Task specs: the label sets mmjax predicts, and which tasks the correlation labels relate.

Labels are stored as integer class ids (index into ``Task.labels``); -1 marks a missing label.
A *correlation task* annotates how two other tasks relate on CMMA's five-level scale -2..2
(strongly conflicting .. strongly consistent); its head reads the joint representation of the
two tasks it relates.
"""

from __future__ import annotations

import dataclasses

from mmjax.errors import ConfigError

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


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; valid tasks: {sorted(TASKS)}") from None


def resolve_tasks(names) -> tuple[Task, ...]:
    """Tasks in the given order; a correlation task needs both tasks it relates."""
    tasks = tuple(get_task(n) for n in names)
    if not tasks:
        raise ConfigError("config.tasks is empty: name at least one of " + ", ".join(TASKS))
    chosen = {t.name for t in tasks}
    for task in tasks:
        missing = [r for r in task.relates or () if r not in chosen]
        if missing:
            raise ConfigError(f"task {task.name!r} relates {task.relates}; add {missing} to config.tasks")
    return tasks
