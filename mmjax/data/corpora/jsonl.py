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
* ``labels`` (object, optional): task -> label name, for any subset of the tasks ``sentiment``
  (negative/neutral/positive), ``emotion`` (neutral/joy/surprise/anger/sadness/disgust/fear),
  ``sarcasm`` (none/sarcastic), ``humor`` (none/humor), ``emotion_sentiment`` and
  ``sarcasm_humor`` ("-2".."2" or the integers -2..2). A missing task or ``null`` is unlabelled.
  The corpus's tasks are those labelled at least once.
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
from mmjax.tasks import TASKS

LANGUAGE = "en"
REQUIRED = ("dialogue", "turn", "speaker", "text")
OPTIONAL = ("id", "labels", "audio", "visual")


def _label(task: str, value, where: str, problems: common.Problems) -> int | None:
    """Class id, -1 for null, None when bad. Correlation tasks also take integers -2..2."""
    if value is None:
        return -1
    if TASKS[task].relates and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        problems.bad("unknown label", where, f"labels.{task} {value!r} is not a label; expected one of "
                     f"{list(TASKS[task].labels)} or null")
        return None
    return common.label_id(TASKS[task].labels, value, f"labels.{task}", where, problems)


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
        if task not in TASKS:
            problems.bad("unknown label", where, f"labels has unknown task {task!r}; expected tasks {list(TASKS)}")
            return None
        label = _label(task, value, where, problems)
        if label is None:
            return None
        if label >= 0:
            labels[task] = label
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
    labelled = {task for d in splits.values() for x in d for t in x.turns for task in t.labels}
    if not labelled:
        raise RecordError(f"{path}: no utterance has a label; expected 'labels' for at least one of {list(TASKS)}")
    return common.Corpus("jsonl", LANGUAGE, splits, common.tasks_in(labelled))
