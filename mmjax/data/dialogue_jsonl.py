"""Dialogues to predict, read from the JSONL format that ``prepare --corpus=jsonl`` trains on
(spec: ``mmjax/data/corpora/jsonl.py``), one utterance per line, labels optional (ignored)::

    {"dialogue": "d1", "turn": 0, "speaker": "A", "text": "...", "audio": "d1_0_audio.npy"}
    {"dialogue": "d1", "turn": 1, "speaker": "B", "text": "...", "id": "clip_7"}

``dialogue`` (string or integer), ``turn`` (integer >= 0), ``speaker`` (a string) and ``text`` (a
non-empty string) are required; ``id`` (the utterance id, default ``<dialogue>_<turn>``; the
predictions carry it), ``labels`` (an object) and ``audio``/``visual`` are optional. Dialogues
keep the order of their first line, utterances are ordered by turn. ``audio``/``visual``: paths
of ``.npy`` float arrays [frames, dim] (a [dim] array is one frame), relative to the input file's
directory and inside it (absolute paths, ``..`` and symlinks leading out are refused unless
``allow_outside``); ``null`` or absent: the modality is missing, as in training. Features of
modalities the model does not read are not loaded; of a long utterance only the frames the model
reads are (``data.arrays``). Blank lines are ignored; anything else that breaks the spec (JSON
syntax or nesting too deep for the parser, a line longer than ``MAX_LINE_BYTES``, a missing or
unknown key, a wrong type, an empty text, a repeated turn or utterance id, a feature file that is
unreadable, not a regular file or claims more bytes than it holds, a feature dimension that
differs from the training records', NaN or inf) raises InputError naming ``file:line``. The input
must be a regular file (a FIFO would block).
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Mapping, Sequence

import numpy as np

from mmjax.data import arrays, schema
from mmjax.data.corpora.jsonl import OPTIONAL, REQUIRED, field_problem
from mmjax.errors import InputError, RecordError


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
    """float32 [frames <= spec.max_frames, dim] from a .npy path of a [frames, dim] or [dim] array
    (one frame, as in training), or None for an absent modality."""
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise ValueError(f"{what} must be the path of a .npy file or null, got {path!r}")
    full = arrays.confined(path, base_dir, what, allow_outside)  # RecordError is a ValueError
    try:
        features = np.asarray(arrays.load_npy(full, spec.max_frames), np.float32)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{what}: cannot read a numeric array from {path!r}: {e}") from None
    features = features[None] if features.ndim == 1 else features
    problem = schema.feature_problem(features, what, spec.dim)  # here, to name the utterance's line
    if problem:
        raise ValueError(problem)
    return features


@dataclasses.dataclass
class Utterance:
    """One line of the input."""

    dialogue: str
    turn: int
    id: str
    speaker: str
    text: str
    audio: np.ndarray | None
    visual: np.ndarray | None


def parse_line(line: str, features: Mapping[str, FeatureSpec], base_dir: str,
               allow_outside: bool = False) -> Utterance:
    """One JSONL line -> its Utterance; ValueError says what is wrong.

    features: {modality: FeatureSpec} of the feature modalities the model reads.
    """
    try:
        value = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid JSON: {e}") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply; the format needs 2 levels") from None
    _keys(value, REQUIRED + OPTIONAL, REQUIRED, "the utterance")
    problem = field_problem(value)
    if problem:
        raise ValueError(problem)
    dialogue, turn = value["dialogue"], value["turn"]
    read = {m: None if m not in features else _features(value.get(m), base_dir, m, features[m], allow_outside)
            for m in ("audio", "visual")}
    # As in training: an empty id is the default one, a speaker may be unnamed, text may not be empty.
    return Utterance(str(dialogue), turn, value.get("id") or f"{dialogue}_{turn}", value["speaker"],
                     _nonempty_string(value["text"], "text"), read["audio"], read["visual"])


def _lines(path: str):
    """(line number, text) of every non-blank line of the regular file ``path``."""
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
            except UnicodeDecodeError as e:  # JSON text is UTF-8 (RFC 8259)
                raise InputError(f"{path}:{number}: byte 0x{raw[e.start]:02x} is not valid UTF-8; the input must be "
                                 "UTF-8-encoded JSONL (convert it, e.g. `iconv -f latin1 -t utf-8`)") from None
            except ValueError as e:
                raise InputError(f"{path}:{number}: {e}") from None
            if line.strip():
                yield number, line


def read(path: str, tokenizer, features: Mapping[str, FeatureSpec], allow_outside: bool = False) -> Dialogues:
    """Every dialogue of the JSONL file at ``path``; the first bad line raises InputError."""
    base_dir = os.path.dirname(os.path.abspath(path))
    dialogues: dict[str, dict[int, tuple[int, Utterance]]] = {}
    id_lines: dict[str, int] = {}
    for number, line in _lines(path):
        try:
            u = parse_line(line, features, base_dir, allow_outside)
            turns = dialogues.setdefault(u.dialogue, {})
            if u.turn in turns:
                raise ValueError(f"dialogue {u.dialogue!r} turn {u.turn} repeats line {turns[u.turn][0]}")
            if u.id in id_lines:
                raise ValueError(f"utterance id {u.id!r} repeats line {id_lines[u.id]}")
        except ValueError as e:
            raise InputError(f"{path}:{number}: {e}") from None
        turns[u.turn] = number, u
        id_lines[u.id] = number
    if not dialogues:
        raise InputError(f"{path}: holds no dialogues")
    out = Dialogues()
    for dialogue_id, turns in dialogues.items():
        lines, utterances = zip(*(turns[t] for t in sorted(turns)))
        texts = [u.text for u in utterances]
        dialogue = schema.Dialogue(dialogue_id=dialogue_id, utterance_ids=[u.id for u in utterances],
                                   speakers=[u.speaker for u in utterances], texts=texts,
                                   tokens=tokenizer.encode_batch(texts), audio=[u.audio for u in utterances],
                                   visual=[u.visual for u in utterances], labels={})
        try:
            dialogue.validate(*(features[m].dim if m in features else 0 for m in ("audio", "visual")))
        except RecordError as e:
            raise InputError(f"{path}:{min(lines)}: dialogue {dialogue_id!r}: {e}") from None
        out.append(dialogue)
    return out
