"""The record: one dialogue with its utterances, features and labels.

A record is stored as an ``.npz`` byte string (never a pickle). Variable-length per-utterance
arrays are flattened with a lengths vector, so a dialogue of ``turns`` utterances holds:

* ``tokens``        int32   [sum(token_lengths)]        token ids, utterances concatenated
* ``token_lengths`` int32   [turns]
* ``audio``         float32 [sum(audio_lengths), audio_dim]
* ``audio_lengths`` int32   [turns]                     0 means the modality is absent
* ``visual``        float32 [sum(visual_lengths), visual_dim]
* ``visual_lengths`` int32  [turns]
* ``label_<task>``  int32   [turns]                     -1 means unlabelled
* ``meta``          JSON (dialogue id, utterance ids, speakers, texts) as UTF-8 bytes
"""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np

from mmjax.errors import RecordError

SCHEMA_VERSION = 1
MODALITIES = ("text", "audio", "visual")
UNLABELLED = -1


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
    labels: dict[str, np.ndarray]  # task -> int32 [turns], UNLABELLED where missing

    @property
    def num_turns(self) -> int:
        return len(self.utterance_ids)

    def validate(self, audio_dim: int = 0, visual_dim: int = 0) -> None:
        """Raises RecordError naming the dialogue and field that breaks the schema."""
        n = self.num_turns
        where = f"dialogue {self.dialogue_id!r}"
        if n == 0:
            raise RecordError(f"{where}: has no utterances")
        for name in ("speakers", "texts", "tokens", "audio", "visual"):
            if len(getattr(self, name)) != n:
                raise RecordError(f"{where}: {name} has {len(getattr(self, name))} entries, expected {n}")
        for task, values in self.labels.items():
            if np.shape(values) != (n,):
                raise RecordError(f"{where}: labels[{task!r}] has shape {np.shape(values)}, expected ({n},)")
        for i, tokens in enumerate(self.tokens):
            if np.ndim(tokens) != 1 or len(tokens) == 0:
                raise RecordError(f"{where}, utterance {self.utterance_ids[i]!r}: empty or non-1-D token ids")
        for modality, dim in (("audio", audio_dim), ("visual", visual_dim)):
            for i, feats in enumerate(getattr(self, modality)):
                if feats is None:
                    continue
                uid = self.utterance_ids[i]
                if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] != dim:
                    raise RecordError(
                        f"{where}, utterance {uid!r}: {modality} features have shape {feats.shape}, "
                        f"expected [frames>0, {dim}]")
                if not np.all(np.isfinite(feats)):
                    raise RecordError(f"{where}, utterance {uid!r}: {modality} features contain NaN or inf")


def _flatten(arrays: list[np.ndarray | None], dim: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([0 if a is None else len(a) for a in arrays], np.int32)
    present = [a for a in arrays if a is not None]
    flat = np.concatenate(present).astype(np.float32) if present else np.zeros((0, dim), np.float32)
    return flat, lengths


def _unflatten(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray | None]:
    out, start = [], 0
    for n in lengths.tolist():
        out.append(None if n == 0 else flat[start:start + n])
        start += n
    return out


def serialize(dialogue: Dialogue, audio_dim: int, visual_dim: int) -> bytes:
    """Dialogue -> npz bytes (no pickles)."""
    audio, audio_lengths = _flatten(dialogue.audio, audio_dim)
    visual, visual_lengths = _flatten(dialogue.visual, visual_dim)
    meta = {"dialogue_id": dialogue.dialogue_id, "utterance_ids": dialogue.utterance_ids,
            "speakers": dialogue.speakers, "texts": dialogue.texts}
    arrays = {
        "meta": np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), np.uint8),
        "tokens": np.concatenate(dialogue.tokens).astype(np.int32),
        "token_lengths": np.array([len(t) for t in dialogue.tokens], np.int32),
        "audio": audio, "audio_lengths": audio_lengths,
        "visual": visual, "visual_lengths": visual_lengths,
    }
    for task, values in dialogue.labels.items():
        arrays[f"label_{task}"] = np.asarray(values, np.int32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def deserialize(data: bytes) -> Dialogue:
    """npz bytes -> Dialogue. Object arrays are refused (allow_pickle=False)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["meta"].tobytes().decode("utf-8"))
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
    )
