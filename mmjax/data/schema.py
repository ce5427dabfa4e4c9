"""The record: one dialogue with its utterances, features and labels.

A record is a byte string: ``MMJX``, a 4-byte header length, a JSON header (the ``meta`` fields and
each array's name, dtype and shape) and the arrays' raw bytes. Only numeric dtypes are accepted,
so reading a record never runs code (no pickles), and arrays are zero-copy views. Variable-length
per-utterance arrays are flattened with a lengths vector; a dialogue of ``turns`` utterances has:

* ``tokens``        int32   [sum(token_lengths)]        token ids, utterances concatenated
* ``token_lengths`` int32   [turns]
* ``audio``         float32 [sum(audio_lengths), audio_dim]
* ``audio_lengths`` int32   [turns]                     0 means the modality is absent
* ``visual``        float32 [sum(visual_lengths), visual_dim]
* ``visual_lengths`` int32  [turns]
* ``text_states``   float16 [sum(text_states_lengths), hidden]   optional: a frozen pretrained
* ``text_states_lengths`` int32 [turns]                 encoder's last hidden states per token
  (``mmjax.models.text_states``), present only in records prepared with ``--text_states``
* ``label_<task>``  int32   [turns]                     -1 means unlabelled (also auxiliary
  labels a corpus keeps that are not tasks, e.g. CMMA's ``label_pride``; see the manifest)
* ``meta`` (header)  dialogue id, utterance ids, speakers, texts, and ``info``: string facts about
  the dialogue from its corpus (CMMA topic, MELD season/episode, MUStARD show); absent in older
  records, read as empty
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from mmjax import tasks
from mmjax.errors import RecordError

SCHEMA_VERSION = 2
MODALITIES = ("text", "audio", "visual")
UNLABELLED = tasks.UNLABELLED  # a missing classification label (see mmjax.tasks)
TEXT_STATES_DTYPE = np.float16  # cached encoder states: half the bytes of float32


@dataclasses.dataclass
class Dialogue:
    """One dialogue. ``audio[i]``/``visual[i]`` is ``None`` where utterance i lacks the modality."""

    dialogue_id: str
    utterance_ids: list[str]
    speakers: list[str]
    texts: list[str]
    tokens: list[np.ndarray]  # each int32 [tokens_i]
    audio: list[np.ndarray | None]  # each float32 [frames_i, audio_dim] or None
    visual: list[np.ndarray | None]  # each float32 [frames_i, visual_dim] or None
    labels: dict[str, np.ndarray]  # task -> [turns, *Task.label_shape] (see mmjax.tasks), missing marked
    info: dict[str, str] = dataclasses.field(default_factory=dict)  # corpus facts, never model input
    # Cached encoder states (mmjax.models.text_states): each float16 [tokens_i, hidden]; None: not cached.
    text_states: list[np.ndarray] | None = None

    @property
    def num_turns(self) -> int:
        return len(self.utterance_ids)

    def validate(self, audio_dim: int = 0, visual_dim: int = 0, text_states_dim: int = 0) -> None:
        """Raises RecordError naming the dialogue and field that breaks the schema."""
        n = self.num_turns
        where = f"dialogue {self.dialogue_id!r}"
        if n == 0:
            raise RecordError(f"{where}: has no utterances")
        for name in ("speakers", "texts", "tokens", "audio", "visual"):
            if len(getattr(self, name)) != n:
                raise RecordError(f"{where}: {name} has {len(getattr(self, name))} entries, expected {n}")
        for task, values in self.labels.items():
            if np.ndim(values) not in (1, 2) or len(values) != n:
                raise RecordError(f"{where}: labels[{task!r}] has shape {np.shape(values)}, expected ({n},) or "
                                  f"({n}, labels)")
        for i, tokens in enumerate(self.tokens):
            if np.ndim(tokens) != 1 or len(tokens) == 0:
                raise RecordError(f"{where}, utterance {self.utterance_ids[i]!r}: empty or non-1-D token ids")
        for modality, dim in (("audio", audio_dim), ("visual", visual_dim)):
            for i, feats in enumerate(getattr(self, modality)):
                problem = None if feats is None else feature_problem(feats, modality, dim)
                if problem:
                    raise RecordError(f"{where}, utterance {self.utterance_ids[i]!r}: {problem}")
        if (self.text_states is None) != (text_states_dim == 0):
            raise RecordError(f"{where}: text states {'missing' if self.text_states is None else 'unexpected'} "
                              f"(the corpus has text states of dim {text_states_dim})")
        for i, states in enumerate(self.text_states or ()):
            uid = self.utterance_ids[i]
            if states.shape != (len(self.tokens[i]), text_states_dim):
                raise RecordError(f"{where}, utterance {uid!r}: text states have shape {states.shape}, expected "
                                  f"({len(self.tokens[i])}, {text_states_dim}): one state per token")
            if not np.all(np.isfinite(states)):
                raise RecordError(f"{where}, utterance {uid!r}: text states contain NaN or inf")


def feature_problem(features: np.ndarray, modality: str, dim: int) -> str | None:
    """What is wrong with one utterance's ``modality`` features for a corpus of feature ``dim``
    (they must be finite float [frames>0, dim]); None when nothing is."""
    if features.ndim != 2 or features.shape[0] == 0 or features.shape[1] != dim:
        return f"{modality} features have shape {features.shape}, expected [frames>0, {dim}]"
    if not np.all(np.isfinite(features)):
        return f"{modality} features contain NaN or inf"
    return None


def _flatten(arrays: list[np.ndarray | None], dim: int, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([0 if a is None else len(a) for a in arrays], np.int32)
    present = [a for a in arrays if a is not None]
    flat = np.concatenate(present).astype(dtype) if present else np.zeros((0, dim), dtype)
    return flat, lengths


def _unflatten(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray | None]:
    out, start = [], 0
    for n in lengths.tolist():
        out.append(None if n == 0 else flat[start:start + n])
        start += n
    return out


_MAGIC = b"MMJX"
_NUMERIC_KINDS = "biuf"  # bool, signed, unsigned, float: nothing that could hold objects


def _pack(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """JSON header (meta + name, dtype, shape of each array) followed by the raw array bytes."""
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    header = {"meta": meta, "arrays": [[k, v.dtype.str, list(v.shape)] for k, v in arrays.items()]}
    encoded = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return b"".join([_MAGIC, len(encoded).to_bytes(4, "little"), encoded, *(v.tobytes() for v in arrays.values())])


def _unpack(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    if data[:4] != _MAGIC:
        raise RecordError(f"not an mmjax record (starts with {data[:4]!r}, expected {_MAGIC!r})")
    size = int.from_bytes(data[4:8], "little")
    header = json.loads(data[8:8 + size].decode("utf-8"))
    offset, arrays = 8 + size, {}
    for name, dtype, shape in header["arrays"]:
        dtype = np.dtype(dtype)
        if dtype.kind not in _NUMERIC_KINDS:
            raise RecordError(f"record array {name!r} has dtype {dtype}; only numeric arrays are allowed")
        count = math.prod(shape)
        arrays[name] = np.frombuffer(data, dtype, count, offset).reshape(shape)
        offset += count * dtype.itemsize
    return header["meta"], arrays


def serialize(dialogue: Dialogue, audio_dim: int, visual_dim: int) -> bytes:
    """Dialogue -> bytes: a JSON header and raw numeric arrays (no pickles, zero-copy reads)."""
    audio, audio_lengths = _flatten(dialogue.audio, audio_dim)
    visual, visual_lengths = _flatten(dialogue.visual, visual_dim)
    meta = {"dialogue_id": dialogue.dialogue_id, "utterance_ids": dialogue.utterance_ids,
            "speakers": dialogue.speakers, "texts": dialogue.texts, "info": dialogue.info}
    arrays = {
        "tokens": np.concatenate(dialogue.tokens).astype(np.int32),
        "token_lengths": np.array([len(t) for t in dialogue.tokens], np.int32),
        "audio": audio, "audio_lengths": audio_lengths,
        "visual": visual, "visual_lengths": visual_lengths,
    }
    if dialogue.text_states is not None:
        arrays["text_states"], arrays["text_states_lengths"] = _flatten(
            dialogue.text_states, dialogue.text_states[0].shape[-1], TEXT_STATES_DTYPE)
    for task, values in dialogue.labels.items():
        values = np.asarray(values)
        arrays[f"label_{task}"] = values.astype(np.float32 if values.dtype.kind == "f" else np.int32)
    return _pack(meta, arrays)


def deserialize(data: bytes) -> Dialogue:
    """bytes -> Dialogue (arrays are read-only views of ``data``)."""
    meta, arrays = _unpack(data)
    token_lengths = arrays["token_lengths"]
    offsets = np.concatenate([[0], np.cumsum(token_lengths)])
    return Dialogue(
        dialogue_id=meta["dialogue_id"],
        utterance_ids=meta["utterance_ids"],
        speakers=meta["speakers"],
        texts=meta["texts"],
        tokens=[arrays["tokens"][offsets[i]:offsets[i + 1]] for i in range(len(token_lengths))],
        audio=_unflatten(arrays["audio"], arrays["audio_lengths"]),
        visual=_unflatten(arrays["visual"], arrays["visual_lengths"]),
        labels={k[len("label_"):]: v for k, v in arrays.items() if k.startswith("label_")},
        info=meta.get("info", {}),
        text_states=(_unflatten(arrays["text_states"], arrays["text_states_lengths"])
                     if "text_states" in arrays else None),
    )
