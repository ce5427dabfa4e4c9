"""grain pipeline: context windows -> shuffle -> pad to static shapes -> batch -> share per host.

Takes its shapes and settings as arguments; ``mmjax.inputs`` derives them from a config.

A training example is a *window* of at most ``max_turns`` consecutive turns of one dialogue.
Dialogues longer than that are cut into windows that overlap by ``context_turns`` turns; the
overlapping turns are context only (labels masked), so every utterance is labelled exactly once
and still sees its previous ``context_turns`` turns.

Padded example (``T`` = max_turns, ``L`` = max_tokens, ``F*`` = max frames, ``D*`` = dims)::

    tokens       int32   [T, L]      token_mask   bool [T, L]
    audio        float32 [T, Fa, Da] audio_mask   bool [T, Fa]   all False: modality absent
    visual       float32 [T, Fv, Dv] visual_mask  bool [T, Fv]   (feature keys only for the
                                                                 modalities the model uses)
    text_states  float16 [T, L, H]   only where Shapes.text_states_dim > 0: the records' cached
                                     encoder states, aligned with tokens (zero on padding)
    speakers     int32   [T]         speaker index within the window (-1 on padding)
    turn_mask    bool    [T]
    labels/<task>        [T, *S]     the task's stored labels (``mmjax.tasks``: classification int32
                                     [T], regression float32 [T], multilabel int32 [T, labels]);
                                     missing on unlabelled, context-only and padding rows

Evaluation and prediction examples also carry ``position`` int32 [T, 2]: (dialogue index in the
split, turn index in the dialogue) of the rows the window predicts, -1 on context-only and padding
rows, so every utterance maps back to exactly one output row. Training batches never have it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import grain
import jax
import numpy as np

from mmjax.data import arrays, schema
from mmjax.errors import ConfigError
from mmjax.tasks import Task


@dataclasses.dataclass(frozen=True)
class Shapes:
    """Static padded shapes of one example."""

    max_turns: int
    max_tokens: int
    max_audio_frames: int
    max_visual_frames: int
    audio_dim: int
    visual_dim: int
    tasks: tuple[Task, ...]
    modalities: tuple[str, ...] = ("text", "audio", "visual")
    text_states_dim: int = 0  # > 0: examples carry the records' cached text states

    def frames(self, modality: str) -> tuple[int, int]:
        """(max frames, feature dim) of a feature modality."""
        return {"audio": (self.max_audio_frames, self.audio_dim),
                "visual": (self.max_visual_frames, self.visual_dim)}[modality]

    @property
    def feature_modalities(self) -> tuple[str, ...]:
        return tuple(m for m in self.modalities if m != "text")


def context_windows(turns: np.ndarray, max_turns: int, context_turns: int) -> np.ndarray:
    """int32 [windows, 3]: (dialogue index, first turn, first labelled turn) for each window."""
    if not 0 <= context_turns < max_turns:
        raise ConfigError(f"config.model.context_turns={context_turns} must be in "
                          f"[0, config.data.max_turns={max_turns})")
    stride = max_turns - context_turns
    out = []
    for index, n in enumerate(turns.tolist()):
        out.append((index, 0, 0))
        start = stride
        while start + context_turns < n:
            out.append((index, start, context_turns))
            start += stride
    return np.array(out, np.int32).reshape(-1, 3)


def _pad_features(features: Sequence[np.ndarray | None], max_frames: int, dim: int):
    values = np.zeros((len(features), max_frames, dim), np.float32)
    mask = np.zeros((len(features), max_frames), bool)
    for t, f in enumerate(features):
        if f is not None:
            keep = arrays.frame_indices(len(f), max_frames)
            values[t, :len(keep)] = f[keep]
            mask[t, :len(keep)] = True
    return values, mask


def empty_example(shapes: Shapes) -> dict:
    """An all-padding example (used to fill the last evaluation batch)."""
    T = shapes.max_turns
    example = {"tokens": np.zeros((T, shapes.max_tokens), np.int32),
               "token_mask": np.zeros((T, shapes.max_tokens), bool),
               "speakers": np.full(T, -1, np.int32), "turn_mask": np.zeros(T, bool),
               "labels": {task.name: task.unlabelled(T) for task in shapes.tasks}}
    if shapes.text_states_dim:
        example["text_states"] = np.zeros((T, shapes.max_tokens, shapes.text_states_dim), schema.TEXT_STATES_DTYPE)
    for modality in shapes.feature_modalities:
        example[modality], example[f"{modality}_mask"] = _pad_features([None] * T, *shapes.frames(modality))
    return example


def pad_window(dialogue: schema.Dialogue, start: int, first_labelled: int, shapes: Shapes) -> dict:
    """The padded example for turns [start, start + max_turns) of ``dialogue``."""
    stop = min(start + shapes.max_turns, dialogue.num_turns)
    turns = range(start, stop)
    n = len(turns)
    example = empty_example(shapes)
    for row, t in enumerate(turns):
        tokens = dialogue.tokens[t][:shapes.max_tokens]  # long utterances are truncated
        example["tokens"][row, :len(tokens)] = tokens
        example["token_mask"][row, :len(tokens)] = True
    if shapes.text_states_dim:
        if dialogue.text_states is None:
            raise schema.RecordError(f"dialogue {dialogue.dialogue_id!r} has no cached text states, which "
                                     "config.model.text_encoder='cached' reads")
        for row, t in enumerate(turns):
            states = dialogue.text_states[t][:shapes.max_tokens]
            example["text_states"][row, :len(states)] = states
    for modality in shapes.feature_modalities:
        features = getattr(dialogue, modality)
        example[modality][:n], example[f"{modality}_mask"][:n] = _pad_features(
            [features[t] for t in turns], *shapes.frames(modality))
    speaker_index: dict[str, int] = {}
    for row, t in enumerate(turns):
        example["speakers"][row] = speaker_index.setdefault(dialogue.speakers[t], len(speaker_index))
    example["turn_mask"][:n] = True
    for task in shapes.tasks:
        values = dialogue.labels.get(task.name)
        if values is not None:
            example["labels"][task.name][first_labelled:n] = values[start + first_labelled:stop]
    return example


def window_position(dialogue_index: int, start: int, first_labelled: int, num_turns: int,
                    max_turns: int) -> np.ndarray:
    """int32 [max_turns, 2]: (dialogue index, turn index) of the rows a window predicts, -1 elsewhere."""
    position = np.full((max_turns, 2), -1, np.int32)
    rows = np.arange(first_labelled, min(start + max_turns, num_turns) - start)
    position[rows, 0] = dialogue_index
    position[rows, 1] = start + rows
    return position


class WindowSource:
    """Random-access source of padded context windows over dialogues.

    ``dialogues``: a records.DialogueSource, or any sequence of schema.Dialogue with a ``turns``
    int array [dialogues] (prediction inputs). ``positions`` adds the ``position`` key.
    """

    def __init__(self, dialogues, shapes: Shapes, context_turns: int, positions: bool = False):
        self.dialogues, self.shapes, self.positions = dialogues, shapes, positions
        self.windows = context_windows(dialogues.turns, shapes.max_turns, context_turns)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        dialogue_index, start, first_labelled = self.windows[index].tolist()
        dialogue = self.dialogues[dialogue_index]
        example = pad_window(dialogue, start, first_labelled, self.shapes)
        if self.positions:
            example["position"] = window_position(dialogue_index, start, first_labelled, dialogue.num_turns,
                                                  self.shapes.max_turns)
        return example

    def padding_example(self) -> dict:
        """An all-padding example with this source's keys (fills the last batches)."""
        example = empty_example(self.shapes)
        if self.positions:
            example["position"] = np.full((self.shapes.max_turns, 2), -1, np.int32)
        return example


def shuffled_batches(source: WindowSource, batch_size: int, seed: int, process_index: int, process_count: int,
                     read_threads: int = 1, worker_count: int = 0) -> grain.IterDataset:
    """Infinite, seeded, shuffled batches of ``batch_size // process_count`` windows of ``source``
    for this host; ``worker_count`` > 0 adds grain worker processes.

    The windows are shuffled globally (a new permutation each epoch) and cut into host-sized
    chunks; host h takes chunks h, h + n, h + 2n, ... So global batch b is the same windows in
    the same order however many hosts there are, while each host reads and decodes only its own
    disjoint share of the records.
    """
    per_host = batch_size // process_count
    ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat()
    ds = ds.batch(per_host, drop_remainder=True)[process_index::process_count]
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=4))
    if worker_count > 0:
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
    return ds


def num_ordered_batches(num_windows: int, batch_size: int, process_count: int) -> int:
    """How many batches ``ordered_batches`` yields on every host."""
    return -(-(-(-num_windows // process_count)) // (batch_size // process_count))


def ordered_batches(source: WindowSource, batch_size: int, process_index: int, process_count: int,
                    read_threads: int = 1) -> Iterator[dict]:
    """Every window of ``source`` once, in order, in host batches of ``batch_size // process_count``;
    every host yields the same number of batches.

    The last batches are filled with all-padding examples, which carry no labels.
    """
    per_host = batch_size // process_count
    num_batches = num_ordered_batches(len(source), batch_size, process_count)
    ds = grain.MapDataset.source(source)[process_index::process_count]
    ds = ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=4))
    examples = iter(ds)
    empty = source.padding_example()
    for _ in range(num_batches):
        yield stack([next(examples, empty) for _ in range(per_host)])


def stack(examples: Sequence[dict]) -> dict:
    """Stacks examples into a batch along a new leading axis."""
    return jax.tree.map(lambda *xs: np.stack(xs), *examples)
