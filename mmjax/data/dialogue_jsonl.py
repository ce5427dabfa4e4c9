"""Dialogues to predict, read from JSONL: one dialogue per line::

    {"dialogue_id": "d1", "utterances": [
        {"speaker": "A", "text": "...", "audio": "d1_0_audio.npy", "visual": "d1_0_visual.npy"},
        {"speaker": "B", "text": "..."}]}

``dialogue_id`` (unique in the file) and ``utterances`` (a non-empty list) are required; each
utterance needs ``speaker`` and ``text`` (non-empty strings) and may give ``audio`` and
``visual``: paths of ``.npy`` float arrays [frames, dim] (relative paths are relative to the
input file's directory; ``null`` or absent: the modality is missing, as in training). Features
of modalities the model does not read are not loaded. Blank lines are ignored; anything else
that breaks the spec (JSON syntax, a missing or unknown key, a wrong type, an empty dialogue or
text, an unreadable feature file, a feature dimension that differs from the training records',
NaN or inf) raises InputError naming ``file:line``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from mmjax.data import schema
from mmjax.data.corpora import common
from mmjax.errors import InputError, RecordError

DIALOGUE_KEYS = ("dialogue_id", "utterances")
UTTERANCE_KEYS = ("speaker", "text", "audio", "visual")
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


def _features(path, base_dir: str, what: str) -> np.ndarray | None:
    """float32 [frames, dim] from a .npy path, or None for an absent modality."""
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ValueError(f"{what} must be the path of a .npy file or null, got {path!r}")
    full = os.path.join(base_dir, path)
    try:
        return np.asarray(common.load_array(full), np.float32)
    except (ValueError, TypeError) as e:  # RecordError from load_array is a ValueError
        raise ValueError(f"{what}: cannot read a numeric array from {full!r}: {e.__cause__ or e}") from None


def parse_line(line: str, tokenizer, feature_dims: Mapping[str, int], base_dir: str) -> schema.Dialogue:
    """One JSONL line -> a Dialogue without labels; ValueError says what is wrong.

    feature_dims: {modality: dim} of the feature modalities the model reads.
    """
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    _keys(value, DIALOGUE_KEYS, DIALOGUE_KEYS, "the dialogue")
    dialogue_id = _nonempty_string(value["dialogue_id"], "dialogue_id")
    utterances = value["utterances"]
    if not isinstance(utterances, list) or not utterances:
        raise ValueError(f"utterances must be a non-empty list, got {utterances!r}")
    speakers, texts, features = [], [], {m: [] for m in ("audio", "visual")}
    for i, utterance in enumerate(utterances):
        what = f"utterance {i}"
        _keys(utterance, UTTERANCE_KEYS, _REQUIRED_UTTERANCE_KEYS, what)
        speakers.append(_nonempty_string(utterance["speaker"], f"{what}: speaker"))
        texts.append(_nonempty_string(utterance["text"], f"{what}: text"))
        for modality in features:
            read = modality in feature_dims
            features[modality].append(
                _features(utterance.get(modality), base_dir, f"{what}: {modality}") if read else None)
    dialogue = schema.Dialogue(dialogue_id=dialogue_id, utterance_ids=[str(i) for i in range(len(texts))],
                               speakers=speakers, texts=texts, tokens=tokenizer.encode_batch(texts),
                               audio=features["audio"], visual=features["visual"], labels={})
    try:
        dialogue.validate(feature_dims.get("audio", 0), feature_dims.get("visual", 0))
    except RecordError as e:
        raise ValueError(str(e)) from None
    return dialogue


def read(path: str, tokenizer, feature_dims: Mapping[str, int]) -> Dialogues:
    """Every dialogue of the JSONL file at ``path``; the first bad line raises InputError."""
    base_dir = os.path.dirname(os.path.abspath(path))
    dialogues, first_line = Dialogues(), {}
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot read the input {path!r}: {e.strerror}") from None
    with f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                dialogue = parse_line(line, tokenizer, feature_dims, base_dir)
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
