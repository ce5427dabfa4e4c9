"""A generic corpus format, so that a user's own corpus needs no code: one JSON object per utterance.

Input: a directory with ``train.jsonl`` and optionally ``validation.jsonl`` and ``test.jsonl``,
UTF-8, one object per line (blank lines are ignored)::

    {"dialogue": "ep1_scene3", "turn": 0, "speaker": "Ann", "text": "You did WHAT?",
     "labels": {"emotion": "surprise", "sentiment": "negative", "sarcasm": "none"}}
    {"dialogue": "ep1_scene3", "turn": 1, "speaker": "Bob", "text": "Relax.", "id": "clip_0042",
     "audio": "features/clip_0042.audio.npy", "labels": {"emotion": "neutral", "humor": null}}

Fields:

* ``dialogue`` (string or integer, required): the dialogue the utterance belongs to.
* ``turn`` (integer >= 0, required): its position; a dialogue's utterances are ordered by it
  (gaps are fine, a repeated turn is an error). Dialogues keep the order of their first line.
* ``speaker`` (string, required), ``text`` (non-empty string, required).
* ``id`` (string, optional): the utterance id, unique in the corpus; default
  ``<dialogue>_<turn>``. Feature files given with ``--audio``/``--visual`` are keyed by it.
* ``labels`` (object, optional): task name -> label, for any tasks the corpus has; a missing
  task or ``null`` is unlabelled. The corpus's tasks are those labelled at least once, each a
  classification task: its label set is the training split's labels, sorted (printed in the
  report and stored in the manifest), except that a task named like a built-in one
  (``sentiment``, ``emotion``, ``sarcasm``, ``humor``, ``emotion_sentiment``,
  ``sarcasm_humor``; see ``mmjax.tasks``) whose labels all belong to its built-in set keeps
  that set, its order and, for the correlation tasks, what it relates (their labels "-2".."2"
  may be written as integers). A label in validation or test that the training split never
  has is an error naming the line (with ``--skip-bad``: that label is dropped, the utterance
  kept). Numbers (regression) and lists (multi-label) are refused for now.
* ``tasks.json`` (optional, beside the ``.jsonl`` files) declares the tasks instead, in the
  manifest's form: ``{"emotion": {"kind": "classification", "labels": ["Joyful", "Mad", ...]},
  "sarcasm_emotion": {"kind": "classification", "labels": ["-1", "0", "1"], "relates":
  ["sarcasm", "emotion"]}}``; every label must then be declared.
* ``audio``, ``visual`` (string, optional): a ``.npy`` file (float [frames, dim] or [dim]),
  relative to the ``.jsonl`` file and inside its directory (an absolute path, ``..`` or a symlink
  leading out is refused unless ``--allow_outside_paths``). Without one the utterance has that
  modality absent.

Any other field is an error (a misspelt ``labels`` would otherwise silently train on nothing).
Text is tokenized with MiniLM by default; pass ``--tokenizer=char`` for Chinese text.
"""

from __future__ import annotations

import json
import os

from mmjax.data import arrays
from mmjax.data.corpora import common
from mmjax.errors import RecordError
from mmjax.tasks import TASKS, Task, corpus_tasks

TASKS_FILE = "tasks.json"

LANGUAGE = "en"
REQUIRED = ("dialogue", "turn", "speaker", "text")
OPTIONAL = ("id", "labels", "audio", "visual")


def _turn(row, base_dir: str, where: str, problems: common.Problems,
          allow_outside: bool) -> tuple[str, int, common.Turn] | None:
    """(dialogue id, turn index, Turn) of one line, or None when the line is bad."""
    if not isinstance(row, dict):
        problems.bad("malformed row", where, f"is a JSON {type(row).__name__}, expected an object")
        return None
    unknown = sorted(set(row) - set(REQUIRED) - set(OPTIONAL))
    missing = [f for f in REQUIRED if f not in row]
    if unknown or missing:
        what = f"unknown fields {unknown}" if unknown else f"lacks {missing}"
        problems.bad("malformed row", where, f"{what}; expected fields {list(REQUIRED)} and optionally {list(OPTIONAL)}")
        return None
    dialogue, turn = row["dialogue"], row["turn"]
    if not (isinstance(dialogue, (str, int)) and not isinstance(dialogue, bool)
            and isinstance(turn, int) and not isinstance(turn, bool) and turn >= 0
            and isinstance(row["speaker"], str) and isinstance(row["text"], str)
            and isinstance(row.get("id", ""), str) and isinstance(row.get("labels", {}), dict)):
        problems.bad("malformed row", where, "expected dialogue: string or integer, turn: integer >= 0, "
                     "speaker/text/id: strings, labels: an object")
        return None
    labels = {}
    for task, value in (row.get("labels") or {}).items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
            kind = ("numbers (a regression task)" if isinstance(value, float) else "a list (a multi-label task)"
                    if isinstance(value, list) else f"{value!r}")
            problems.bad("bad label (label dropped)", where, f"labels.{task} is {kind}; this mmjax trains "
                         "classification tasks: expected a label name (a string) or null")
            continue
        labels[task] = value  # a label name, made a class id once the corpus's tasks are known
    result = common.Turn(row.get("id") or f"{dialogue}_{turn}", row["speaker"], row["text"], where, labels)
    for modality in common.FEATURE_MODALITIES:
        if row.get(modality) is not None:
            try:
                path = arrays.confined(str(row[modality]), base_dir, f"{modality} file", allow_outside)
                setattr(result, modality, arrays.load_npy(path))
            except RecordError as e:
                problems.bad(f"bad {modality} feature array (modality left absent)", where,
                             f"{e}; expected a .npy file relative to the .jsonl file")
                continue
            result.feature_where[modality] = path
    return str(dialogue), turn, result


def _read_split(path: str, options: common.Options, problems: common.Problems) -> list[common.RawDialogue]:
    dialogues: dict[str, dict[int, common.Turn]] = {}
    base_dir = os.path.dirname(path)
    lines = common.read_lines(path, options.encoding or "utf-8", problems)
    for number, line in common.progress(lines, os.path.basename(path)):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            problems.bad("malformed row", where, f"not valid JSON ({e.msg}); expected one JSON object per line")
            continue
        parsed = _turn(row, base_dir, where, problems, options.allow_outside_paths)
        if parsed is None:
            continue
        dialogue, index, turn = parsed
        turns = dialogues.setdefault(dialogue, {})
        if index in turns:
            problems.bad("duplicated turn", where, f"dialogue {dialogue!r} turn {index} is already at "
                         f"{turns[index].where}; expected each turn once")
            continue
        turns[index] = turn
    return [common.RawDialogue(d, [turns[i] for i in sorted(turns)]) for d, turns in dialogues.items()]


def read(path: str, options: common.Options, problems: common.Problems) -> common.Corpus:
    files = {split: os.path.join(path, f"{split}.jsonl") for split in common.SPLITS}
    if not os.path.isfile(files["train"]):
        raise RecordError(f"{path}: expected a directory with train.jsonl (and optionally validation.jsonl, "
                          "test.jsonl)")
    splits = {split: _read_split(file, options, problems)
              for split, file in files.items() if os.path.isfile(file)}
    declared = os.path.join(path, TASKS_FILE)
    if os.path.isfile(declared):
        tasks, source = _declared_tasks(declared), f"declared in {declared}"
    else:
        tasks, source = _inferred_tasks(splits["train"], path), "those of train.jsonl"
    for split in splits.values():
        for dialogue in split:
            for turn in dialogue.turns:
                turn.labels = _label_ids(turn, tasks, problems, source)
    return common.Corpus("jsonl", LANGUAGE, splits, tuple(tasks.values()))


def _declared_tasks(path: str) -> dict[str, Task]:
    try:
        with open(path, encoding="utf-8") as f:
            section = json.load(f)
    except (OSError, ValueError) as e:
        raise RecordError(f"{path}: cannot read the task declarations ({e})") from None
    if not isinstance(section, dict) or not section:
        raise RecordError(f"{path}: expected an object of task name -> declaration")
    return corpus_tasks({"tasks": section}, where=path)


def _inferred_tasks(train: list[common.RawDialogue], path: str) -> dict[str, Task]:
    """Per labelled task: its built-in spec when every training label belongs to it, else a
    classification task over the training split's labels, sorted."""
    values: dict[str, set[str]] = {}
    for dialogue in train:
        for turn in dialogue.turns:
            for task, value in turn.labels.items():
                values.setdefault(task, set()).add(str(value))
    if not values:
        raise RecordError(f"{path}: no utterance of train.jsonl has a label; expected 'labels' with a label "
                          "name for at least one task")
    tasks = {}
    for name in sorted(values, key=lambda n: (n not in TASKS, list(TASKS).index(n) if n in TASKS else n)):
        builtin = TASKS.get(name)
        if builtin and values[name] <= set(builtin.labels) and all(r in values for r in builtin.relates or ()):
            tasks[name] = builtin
        elif len(values[name]) < 2:
            raise RecordError(f"{path}: task {name!r} has the single label {sorted(values[name])} in train.jsonl; "
                              "a classification task needs at least two")
        else:
            tasks[name] = Task(name, tuple(sorted(values[name])))
    return tasks


def _label_ids(turn: common.Turn, tasks: dict[str, Task], problems: common.Problems, source: str):
    """The turn's label names as class ids; an unknown task or label is dropped (or an error).
    ``source`` says where the tasks come from (the tasks file, or the training labels)."""
    ids = {}
    for task, value in turn.labels.items():
        spec = tasks.get(task)
        if spec is None:
            problems.bad("unknown task (label dropped)", turn.where,
                         f"labels.{task}: the corpus's tasks are {list(tasks)} ({source})")
        elif str(value) not in spec.labels:
            problems.bad("unknown label (label dropped)", turn.where,
                         f"labels.{task} {value!r} is not one of the task's labels {list(spec.labels)} ({source})")
        else:
            ids[task] = spec.labels.index(str(value))
    return ids
