"""Dialogues to predict, read from JSONL: one dialogue per line::

    {"dialogue_id": "d1", "utterances": [
        {"speaker": "A", "text": "...", "audio": "d1_0_audio.npy", "visual": "d1_0_visual.npy"},
        {"speaker": "B", "text": "..."}]}

``dialogue_id`` (unique in the file) and ``utterances`` (a non-empty list) are required; each
utterance needs ``speaker`` and ``text`` (non-empty strings), may give an ``id`` (default
``<dialogue_id>_<index>``; the predictions carry it) and may give ``audio`` and
``visual``: paths of ``.npy`` float arrays [frames, dim], relative to the input file's directory
and inside it (absolute paths, ``..`` and symlinks leading out are refused unless
``allow_outside``); ``null`` or absent: the modality is missing, as in training. Features of
modalities the model does not read are not loaded; of a long utterance only the frames the model
reads are (``data.arrays``). Blank lines are ignored; anything else that breaks the spec (JSON
syntax or nesting too deep for the parser, a line longer than ``MAX_LINE_BYTES``, a missing or
unknown key, a wrong type, an empty dialogue or text, a feature file that is unreadable, not a
regular file or claims more bytes than it holds, a feature dimension that differs from the
training records', NaN or inf) raises InputError naming ``file:line``. The input must be a
regular file (a FIFO would block).
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Mapping, Sequence

import numpy as np

from mmjax.data import arrays, schema
from mmjax.errors import InputError, RecordError

DIALOGUE_KEYS = ("dialogue_id", "utterances")
UTTERANCE_KEYS = ("speaker", "text", "id", "audio", "visual")
_REQUIRED_UTTERANCE_KEYS = ("speaker", "text")


class Dialogues(list):
    """A list of schema.Dialogue with ``turns`` int32 [dialogues], as pipeline.WindowSource needs."""

    @property
    def turns(self) -> np.ndarray:
        return np.array([d.num_turns for d in self], np.int32)


def _keys(value, allowed: Sequence[str], required: Sequence[str], what: str) -> None:
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a JSON object, got {type(value).__name__}")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise ValueError(f"{what} has unknown keys {unknown}; allowed: {list(allowed)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise ValueError(f"{what} lacks {missing}")


def _nonempty_string(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


MAX_LINE_BYTES = 16 << 20  # a dialogue's text and feature paths; far beyond any real one


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """What the model reads of a feature modality: its dim and at most ``max_frames`` frames."""

    dim: int
    max_frames: int


def _features(path, base_dir: str, what: str, spec: FeatureSpec, allow_outside: bool) -> np.ndarray | None:
    """float32 [frames <= spec.max_frames, dim] from a .npy path, or None for an absent modality."""
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ValueError(f"{what} must be the path of a .npy file or null, got {path!r}")
    full = arrays.confined(path, base_dir, what, allow_outside)  # RecordError is a ValueError
    try:
        return np.asarray(arrays.load_npy(full, spec.max_frames), np.float32)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what}: cannot read a numeric array from {path!r}: {e}") from None


def parse_line(line: str, tokenizer, features: Mapping[str, FeatureSpec], base_dir: str,
               allow_outside: bool = False) -> schema.Dialogue:
    """One JSONL line -> a Dialogue without labels; ValueError says what is wrong.

    features: {modality: FeatureSpec} of the feature modalities the model reads.
    """
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply; the format needs 3 levels") from None
    _keys(value, DIALOGUE_KEYS, DIALOGUE_KEYS, "the dialogue")
    dialogue_id = _nonempty_string(value["dialogue_id"], "dialogue_id")
    utterances = value["utterances"]
    if not isinstance(utterances, list) or not utterances:
        raise ValueError(f"utterances must be a non-empty list, got {utterances!r}")
    ids, speakers, texts, read = [], [], [], {m: [] for m in ("audio", "visual")}
    for i, utterance in enumerate(utterances):
        what = f"utterance {i}"
        _keys(utterance, UTTERANCE_KEYS, _REQUIRED_UTTERANCE_KEYS, what)
        ids.append(_nonempty_string(utterance.get("id", f"{dialogue_id}_{i}"), f"{what}: id"))
        speakers.append(_nonempty_string(utterance["speaker"], f"{what}: speaker"))
        texts.append(_nonempty_string(utterance["text"], f"{what}: text"))
        for modality, values in read.items():
            spec = features.get(modality)
            values.append(None if spec is None else
                          _features(utterance.get(modality), base_dir, f"{what}: {modality}", spec, allow_outside))
    if len(set(ids)) != len(ids):
        raise ValueError(f"utterance ids {ids} repeat; expected each id once in a dialogue")
    dialogue = schema.Dialogue(dialogue_id=dialogue_id, utterance_ids=ids,
                               speakers=speakers, texts=texts, tokens=tokenizer.encode_batch(texts),
                               audio=read["audio"], visual=read["visual"], labels={})
    try:
        dialogue.validate(*(features[m].dim if m in features else 0 for m in ("audio", "visual")))
    except RecordError as e:
        raise ValueError(str(e)) from None
    return dialogue


def read(path: str, tokenizer, features: Mapping[str, FeatureSpec], allow_outside: bool = False) -> Dialogues:
    """Every dialogue of the JSONL file at ``path``; the first bad line raises InputError."""
    base_dir = os.path.dirname(os.path.abspath(path))
    dialogues, first_line = Dialogues(), {}
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError(f"the input {path!r} is not a regular file; expected a JSONL file")
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot read the input {path!r}: {e.strerror}") from None
    with f:
        for number, raw in enumerate(iter(lambda: f.readline(MAX_LINE_BYTES + 1), b""), start=1):
            try:
                if len(raw) > MAX_LINE_BYTES:
                    raise ValueError(f"line longer than {MAX_LINE_BYTES:,} bytes")
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                dialogue = parse_line(line, tokenizer, features, base_dir, allow_outside)
                if dialogue.dialogue_id in first_line:
                    raise ValueError(f"dialogue_id {dialogue.dialogue_id!r} repeats line "
                                     f"{first_line[dialogue.dialogue_id]}")
            except ValueError as e:  # UnicodeDecodeError included
                raise InputError(f"{path}:{number}: {e}") from None
            first_line[dialogue.dialogue_id] = number
            dialogues.append(dialogue)
    if not dialogues:
        raise InputError(f"{path}: holds no dialogues")
    return dialogues
