"""A generic corpus format, so that a user's own corpus needs no code: one JSON object per utterance.

Input: a directory with ``train.jsonl`` and optionally ``validation.jsonl`` and ``test.jsonl``,
UTF-8, one object per line (blank lines are ignored). Without ``validation.jsonl``, a seeded
``--validation_fraction`` of the training dialogues (at least one) becomes the validation split,
which training needs to select checkpoints (``--validation_fraction=0``: none); the tasks, their
labels and ranges are those of the whole ``train.jsonl`` (a label only the held-out dialogues
have is kept, with no training example: its count is 0 in the summary)::

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
  task or ``null`` is unlabelled. The corpus's tasks are those labelled at least once; a task's
  kind (``mmjax.tasks``) comes from its training labels:

  - all strings: a **classification** task over the training split's labels, sorted (printed
    in the report and stored in the manifest): ``"emotion": "Joyful"``;
  - all numbers: a **regression** task over the training split's range [min, max]:
    ``"intensity": -1.4`` (write class ids as strings, or declare them in ``tasks.json``, to
    make them classes);
  - all lists of strings: a **multi-label** task over the labels the training split uses,
    sorted: ``"topics": ["work", "family"]`` (``[]``: labelled, no label applies).

  A task named like a built-in one (``sentiment``, ``emotion``, ``sarcasm``, ``humor``,
  ``emotion_sentiment``, ``sarcasm_humor``, ``sentiment_intensity``; see ``mmjax.tasks``) whose
  labels all fit it keeps its declaration: the label set and order, for the correlation tasks
  what they relate (their labels "-2".."2" may be written as integers), for
  ``sentiment_intensity`` the range [-3, 3]. A label in validation or test that the training
  split never has (a class or label name it lacks, a value outside its range) is an error naming
  the line (with ``--skip-bad``: that label is dropped, the utterance kept).
* ``tasks.json`` (optional, beside the ``.jsonl`` files) declares the tasks instead, in the
  manifest's form, one entry per kind::

      {"emotion": {"kind": "classification", "labels": ["Joyful", "Mad", "Neutral"]},
       "intensity": {"kind": "regression", "range": [-3, 3]},
       "topics": {"kind": "multilabel", "labels": ["family", "work"]},
       "sarcasm_emotion": {"kind": "classification", "labels": ["-1", "0", "1"],
                           "relates": ["sarcasm", "emotion"]}}

  Every label must then be declared, and every value lie in its task's range.
* ``audio``, ``visual`` (string, optional): a ``.npy`` file (float [frames, dim] or [dim]),
  relative to the ``.jsonl`` file and inside its directory (an absolute path, ``..`` or a symlink
  leading out is refused unless ``--allow_outside_paths``). Without one the utterance has that
  modality absent.

Any other field is an error (a misspelt ``labels`` would otherwise silently train on nothing).
Text is tokenized with MiniLM by default; pass ``--tokenizer=char`` for Chinese text.
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from mmjax.data import arrays
from mmjax.data.corpora import common
from mmjax.errors import ConfigError, RecordError
from mmjax.tasks import CLASSIFICATION, MULTILABEL, REGRESSION, TASKS, Task, corpus_tasks, is_finite_number

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)

TASKS_FILE = "tasks.json"

LANGUAGE = "en"
REQUIRED = ("dialogue", "turn", "speaker", "text")
OPTIONAL = ("id", "labels", "audio", "visual")


def field_problem(row: dict) -> str | None:
    """What is wrong with the first field of an utterance object (its fields named as the format
    requires) whose type breaks the format, as "<field> must be ..., got ...", or None. Prepare
    and predict read the same lines."""
    dialogue, turn = row["dialogue"], row["turn"]
    if isinstance(dialogue, bool) or not isinstance(dialogue, (str, int)) or dialogue == "":
        return f"dialogue must be a non-empty string or an integer, got {dialogue!r}"
    if isinstance(turn, bool) or not isinstance(turn, int) or turn < 0:
        return f"turn must be an integer >= 0, got {turn!r}"
    for field in ("speaker", "text", "id"):
        if not isinstance(row.get(field, ""), str):
            return f"{field} must be a string, got {row[field]!r}"
    if not isinstance(row.get("labels", {}), dict):
        return f"labels must be an object, got {row['labels']!r}"
    return None


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
    problem = field_problem(row)
    if problem:
        problems.bad("malformed row", where, problem)
        return None
    dialogue, turn = row["dialogue"], row["turn"]
    labels = {}
    for task, value in (row.get("labels") or {}).items():
        if value is None:
            continue
        if _label_type(value) is None:
            problems.bad("bad label (label dropped)", where, f"labels.{task} is {value!r}; expected a label name "
                         "(a string), a finite number, a list of distinct label names, or null")
            continue
        labels[task] = value  # made a class id, value or indicators once the corpus's tasks are known
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
            result.feature_where[modality] = f"{path} (named at {where})"
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
        tasks, source, range_hint = _declared_tasks(declared), f"declared in {declared}", ""
    else:
        tasks, source = _inferred_tasks(splits["train"], path), "those of train.jsonl"
        range_hint = "; a tasks.json may declare a wider range"  # an inferred range is train's [min, max]
    if not 0 <= options.validation_fraction < 1:
        raise ConfigError(f"--validation_fraction={options.validation_fraction}: expected a value in [0, 1)")
    extra = {}
    if "validation" not in splits and options.validation_fraction > 0:
        splits["train"], splits["validation"] = _held_out(splits["train"], options, files["train"])
        extra["held_out_validation"] = {"fraction": options.validation_fraction, "seed": options.seed,
                                        "dialogues": [d.dialogue_id for d in splits["validation"]]}
    _warn_shared_dialogues(splits)
    for split in splits.values():
        for dialogue in split:
            for turn in dialogue.turns:
                turn.labels = _label_ids(turn, tasks, problems, source, range_hint)
    return common.Corpus("jsonl", LANGUAGE, splits, tuple(tasks.values()), extra=extra)


def _warn_shared_dialogues(splits: dict[str, list[common.RawDialogue]]) -> None:
    """A dialogue id in two splits is kept as two dialogues, but is often one conversation split
    across them (its turns then leak from train into evaluation): say so."""
    ids = {split: {d.dialogue_id for d in dialogues} for split, dialogues in splits.items()}
    names = list(ids)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            shared = sorted(ids[first] & ids[second])
            if shared:
                more = f" (and {len(shared) - 3} more)" if len(shared) > 3 else ""
                _log.warning("dialogue ids %s%s are in both %s and %s: kept as different dialogues; if they are one "
                             "conversation, its turns leak across the splits", shared[:3], more, first, second)


def _held_out(train: list[common.RawDialogue], options: common.Options,
              where: str) -> tuple[list[common.RawDialogue], list[common.RawDialogue]]:
    """(train, validation): a seeded ``options.validation_fraction`` of the dialogues of ``train``
    (at least one, by dialogue so no conversation straddles the two), in their order."""
    if len(train) < 2:
        raise RecordError(f"{where}: holds {len(train)} dialogue(s) and there is no validation.jsonl; hold-out "
                          "validation needs 2 or more (or give validation.jsonl)")
    count = min(len(train) - 1, max(1, round(options.validation_fraction * len(train))))
    held = set(np.random.default_rng([options.seed, 1]).permutation(len(train))[:count].tolist())
    _log.info("no validation.jsonl: %d of %d training dialogues held out for validation (--validation_fraction=%g, "
              "--seed=%d)", count, len(train), options.validation_fraction, options.seed)
    return ([d for i, d in enumerate(train) if i not in held], [d for i, d in enumerate(train) if i in held])


def _declared_tasks(path: str) -> dict[str, Task]:
    try:
        with open(path, encoding="utf-8") as f:
            section = json.load(f)
    except (OSError, ValueError) as e:
        raise RecordError(f"{path}: cannot read the task declarations ({e})") from None
    if not isinstance(section, dict) or not section:
        raise RecordError(f"{path}: expected an object of task name -> declaration")
    return corpus_tasks({"tasks": section}, where=path)


def _label_type(value) -> str | None:
    """The kind a raw label value implies, or None for a value no kind accepts."""
    if isinstance(value, str):
        return CLASSIFICATION if value else None
    if is_finite_number(value):
        return REGRESSION
    if isinstance(value, list) and all(isinstance(x, str) and x for x in value) and len(set(value)) == len(value):
        return MULTILABEL
    return None


def _inferred_tasks(train: list[common.RawDialogue], path: str) -> dict[str, Task]:
    """Per labelled task: its built-in spec when every training label belongs to it, else a
    task of the kind its training labels imply (see the module docstring)."""
    values: dict[str, list] = {}
    first_of_kind: dict[str, dict[str, str]] = {}  # task -> kind -> the first line with such a label
    for dialogue in train:
        for turn in dialogue.turns:
            for task, value in turn.labels.items():
                values.setdefault(task, []).append(value)
                first_of_kind.setdefault(task, {}).setdefault(_label_type(value), turn.where)
    if not values:
        raise RecordError(f"{path}: no utterance of train.jsonl has a label; expected 'labels' with a label "
                          "for at least one task")
    tasks = {}
    for name in sorted(values, key=lambda n: (n not in TASKS, list(TASKS).index(n) if n in TASKS else n)):
        builtin, seen = TASKS.get(name), values[name]
        kinds = set(first_of_kind[name])
        if (builtin and all(not isinstance(_stored_label(builtin, v), str) for v in seen)
                and all(r in values for r in builtin.relates or ())):
            tasks[name] = builtin
        elif len(kinds) > 1:
            first = "; ".join(f"{kind} first at {where}" for kind, where in first_of_kind[name].items())
            raise RecordError(f"task {name!r} mixes kinds of labels in train.jsonl ({first}); expected one kind: "
                              "strings (classification), numbers (regression) or lists (multi-label)")
        elif kinds == {REGRESSION}:
            low, high = float(min(seen)), float(max(seen))
            if low == high:
                raise RecordError(f"{path}: task {name!r} has the single value {low:g} in train.jsonl; a regression "
                                  "task needs at least two (or declare its range in tasks.json)")
            tasks[name] = Task(name, kind=REGRESSION, value_range=(low, high))
            if all(isinstance(v, int) for v in seen):
                _log.warning("task %r: every training label is an integer, so it is a regression task over [%g, %g]; "
                             "write them as strings (or declare the task in tasks.json) to make them classes",
                             name, low, high)
        elif kinds == {MULTILABEL}:
            labels = sorted({x for v in seen for x in v})
            if not labels:
                raise RecordError(f"{path}: task {name!r} has only empty label lists in train.jsonl; a multi-label "
                                  "task needs at least one label (or declare its labels in tasks.json)")
            tasks[name] = Task(name, tuple(labels), kind=MULTILABEL)
        elif len(set(seen)) < 2:
            raise RecordError(f"{path}: task {name!r} has the single label {sorted(set(seen))} in train.jsonl; "
                              "a classification task needs at least two")
        else:
            tasks[name] = Task(name, tuple(sorted(set(seen))))
    return tasks


def _stored_label(task: Task, value):
    """``value`` as ``task`` stores it (class id, float, indicators), or a string saying why not."""
    kind = _label_type(value)
    if task.kind == REGRESSION:
        low, high = task.value_range
        if kind == REGRESSION and low <= value <= high:
            return float(value)
        return (f"is {'outside' if kind == REGRESSION else 'not a number in'} the regression task's range "
                f"[{low:g}, {high:g}]")
    if task.kind == MULTILABEL:
        unknown = [x for x in value if x not in task.labels] if kind == MULTILABEL else None
        if unknown == []:
            return np.isin(task.labels, value).astype(np.int32)
        return (f"has labels {unknown} that are not" if unknown else "is not a list") + \
            f" of the multi-label task's labels {list(task.labels)}"
    if kind == MULTILABEL or str(value) not in task.labels:
        return f"is not one of the task's labels {list(task.labels)}"
    return task.labels.index(str(value))


def _label_ids(turn: common.Turn, tasks: dict[str, Task], problems: common.Problems, source: str,
               range_hint: str):
    """The turn's labels as stored (class ids, values, indicators); an unknown task or a label
    the task cannot take is dropped (or an error). ``source`` says where the tasks come from (the
    tasks file, or the training labels); ``range_hint`` follows it for a value outside a regression
    task's range."""
    ids = {}
    for task, value in turn.labels.items():
        spec = tasks.get(task)
        if spec is None:
            problems.bad("unknown task (label dropped)", turn.where,
                         f"labels.{task}: the corpus's tasks are {list(tasks)} ({source})")
            continue
        stored = _stored_label(spec, value)
        if isinstance(stored, str):
            hint = range_hint if spec.kind == REGRESSION else ""
            problems.bad("unknown label (label dropped)", turn.where, f"labels.{task} {value!r} {stored} ({source}{hint})")
        else:
            ids[task] = stored
    return ids
