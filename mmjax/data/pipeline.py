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
import sys
import threading
from collections.abc import Iterator, Sequence

import grain
import jax
import numpy as np

from mmjax.data import arrays, packing, schema
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
    packed_text: bool = False  # batches carry their text packed (mmjax.data.packing)

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


def empty_batch(shapes: Shapes, size: int) -> dict:
    """``size`` all-padding examples, stacked: every array [size, T, ...]."""
    B, T, L = size, shapes.max_turns, shapes.max_tokens
    batch = {"tokens": np.zeros((B, T, L), np.int32), "token_mask": np.zeros((B, T, L), bool),
             "speakers": np.full((B, T), -1, np.int32), "turn_mask": np.zeros((B, T), bool),
             "labels": {task.name: task.unlabelled(B * T).reshape(B, T, *task.label_shape) for task in shapes.tasks}}
    if shapes.text_states_dim:
        batch["text_states"] = np.zeros((B, T, L, shapes.text_states_dim), schema.TEXT_STATES_DTYPE)
    for modality in shapes.feature_modalities:
        frames, dim = shapes.frames(modality)
        batch[modality] = np.zeros((B, T, frames, dim), np.float32)
        batch[f"{modality}_mask"] = np.zeros((B, T, frames), bool)
    return batch


def model_batch(batch: dict, shapes: Shapes, groups: packing.Packing = packing.Packing(),
                rows: int | None = None) -> dict:
    """A batch of windows as the model reads it: its text packed in ``groups`` when ``shapes``
    says so (``packing.pack``, with ``rows`` rows per group or the fewest that hold it), else unchanged."""
    return packing.pack(batch, groups, rows) if shapes.packed_text else batch


def largest_batch(shapes: Shapes, size: int, groups: packing.Packing = packing.Packing()) -> dict:
    """An all-padding batch of ``size`` windows with the largest shapes a model batch can have
    (packed text: every turn a row of its own), what models are initialised and first compiled on."""
    return model_batch(empty_batch(shapes, size), shapes, groups, rows=size // groups.groups * shapes.max_turns)


def pad_dialogue(dialogue: schema.Dialogue, shapes: Shapes) -> dict:
    """Every turn of ``dialogue`` padded to the example's shapes, [turns, ...] per key (as an
    example's, with ``speakers`` numbered over the whole dialogue); windows are row ranges of it.
    Long utterances are truncated to ``max_tokens``, frames subsampled to the max frames."""
    n, L = dialogue.num_turns, shapes.max_tokens
    padded = {"tokens": np.zeros((n, L), np.int32), "token_mask": np.zeros((n, L), bool)}
    for t, tokens in enumerate(dialogue.tokens):
        padded["tokens"][t, :len(tokens[:L])] = tokens[:L]
        padded["token_mask"][t, :len(tokens[:L])] = True
    if shapes.text_states_dim:
        if dialogue.text_states is None:
            raise schema.RecordError(f"dialogue {dialogue.dialogue_id!r} has no cached text states, which "
                                     "config.model.text_encoder='cached' reads")
        padded["text_states"] = np.zeros((n, L, shapes.text_states_dim), schema.TEXT_STATES_DTYPE)
        for t, states in enumerate(dialogue.text_states):
            padded["text_states"][t, :len(states[:L])] = states[:L]
    for modality in shapes.feature_modalities:
        padded[modality], padded[f"{modality}_mask"] = _pad_features(getattr(dialogue, modality),
                                                                     *shapes.frames(modality))
    index: dict[str, int] = {}
    padded["speakers"] = np.array([index.setdefault(s, len(index)) for s in dialogue.speakers], np.int32)
    # Copies: a record's arrays are views of its whole buffer, which a cached view would keep alive.
    padded["labels"] = {t.name: np.array(dialogue.labels.get(t.name, t.unlabelled(n))) for t in shapes.tasks}
    return padded


def fill_window(batch: dict, row: int, padded: dict, start: int, first_labelled: int) -> None:
    """Writes turns [start, start + max_turns) of a ``pad_dialogue`` result into example ``row``
    of ``batch`` (from ``empty_batch``); turns before ``first_labelled`` keep no label."""
    T = batch["turn_mask"].shape[1]
    stop = min(start + T, len(padded["speakers"]))
    n = stop - start
    for key, values in padded.items():
        if key not in ("labels", "speakers"):
            batch[key][row, :n] = values[start:stop]
    index: dict[int, int] = {}  # speakers renumbered in order of first appearance in the window
    batch["speakers"][row, :n] = [index.setdefault(s, len(index)) for s in padded["speakers"][start:stop].tolist()]
    batch["turn_mask"][row, :n] = True
    for task, values in padded["labels"].items():
        batch["labels"][task][row, first_labelled:n] = values[start + first_labelled:stop]


def window_position(dialogue_index: int, start: int, first_labelled: int, num_turns: int,
                    max_turns: int) -> np.ndarray:
    """int32 [max_turns, 2]: (dialogue index, turn index) of the rows a window predicts, -1 elsewhere."""
    position = np.full((max_turns, 2), -1, np.int32)
    rows = np.arange(first_labelled, min(start + max_turns, num_turns) - start)
    position[rows, 0] = dialogue_index
    position[rows, 1] = start + rows
    return position


def _write_row(batch: dict, row: int, example: dict) -> None:
    """Writes the batch-of-one ``example`` into row ``row`` of every array of ``batch`` (nested dicts)."""
    for out, x in zip(jax.tree.leaves(batch), jax.tree.leaves(example), strict=True):
        out[row] = x[0]


class WindowSource:
    """Random-access source of padded context windows over dialogues, read a batch at a time.

    ``dialogues``: a records.DialogueSource, or any sequence of schema.Dialogue with a ``turns``
    int array [dialogues] (prediction inputs). ``positions`` adds the ``position`` key.
    ``groups``: how a batch's text is packed, where ``shapes.packed_text`` (``packing.Packing``).

    Each window is read, decoded and padded once (``fill_window``) into a slab: one array per key
    holding the first ``capacity`` windows, as many as fit in ``cache_bytes`` (all of them for the
    shipped corpora at the default budget). A batch of cached windows is then one gather per key
    (``slab[key][indices]``), what makes the pipeline keep up with an accelerator's step; windows
    past the capacity are padded afresh each time. Safe under grain's read threads: a row is
    written whole before it is marked filled, and two threads filling one row write the same
    values. Each worker process gets a copy without the slab and builds its own.
    """

    def __init__(self, dialogues, shapes: Shapes, context_turns: int, positions: bool = False,
                 cache_bytes: int = 1 << 30, groups: packing.Packing = packing.Packing()):
        self.dialogues, self.shapes, self.positions, self.groups = dialogues, shapes, positions, groups
        self.windows = context_windows(dialogues.turns, shapes.max_turns, context_turns)
        self._padding = self._empty(1)  # all-padding example (index -1), as a batch of one
        self.capacity = min(len(self.windows), cache_bytes // sum(x.nbytes for x in jax.tree.leaves(self._padding)))
        self._allocate()

    def _allocate(self) -> None:
        # Zero pages (calloc): memory is used as rows are filled.
        self._slab, self._filled = self._empty(self.capacity), np.zeros(self.capacity, bool)

    def _empty(self, size: int) -> dict:
        batch = empty_batch(self.shapes, size)
        if self.positions:
            batch["position"] = np.full((size, self.shapes.max_turns, 2), -1, np.int32)
        return batch

    def __len__(self) -> int:
        return len(self.windows)

    def __getstate__(self) -> dict:  # grain's worker processes get a copy without the slab
        return {k: v for k, v in self.__dict__.items() if k not in ("_slab", "_filled")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._allocate()

    def _fill(self, batch: dict, row: int, index: int) -> None:
        """Reads, decodes and pads window ``index`` straight into row ``row`` of ``batch``, a row
        that still holds the padding ``_empty`` put there."""
        dialogue_index, start, first_labelled = self.windows[index].tolist()
        dialogue = self.dialogues[dialogue_index]
        fill_window(batch, row, pad_dialogue(dialogue, self.shapes), start, first_labelled)
        if self.positions:
            batch["position"][row] = window_position(dialogue_index, start, first_labelled, dialogue.num_turns,
                                                     self.shapes.max_turns)

    def batch(self, indices) -> dict:
        """The windows ``indices`` as one model batch [len(indices), T, ...] (index -1: all
        padding; ``model_batch``: text packed where the shapes say so)."""
        indices = np.asarray(indices, np.int64)
        cached = (indices >= 0) & (indices < self.capacity)
        rows = np.where(cached, indices, 0)
        for index in np.unique(indices[cached & ~self._filled[rows]]).tolist() if self.capacity else ():
            self._fill(self._slab, index, index)
            self._filled[index] = True
        batch = (jax.tree.map(lambda slab: np.take(slab, rows, axis=0), self._slab) if self.capacity
                 else self._empty(len(indices)))
        for row in np.flatnonzero(~cached).tolist():
            _write_row(batch, row, self._padding)  # the gather put window 0 there
            if indices[row] >= 0:
                self._fill(batch, row, int(indices[row]))
        return model_batch(batch, self.shapes, self.groups)


class ShuffledIndexBatches:
    """Host ``process_index``'s batches of window indices over endless seeded permutations.

    The epochs are permutations of ``range(num_items)``, a new one each epoch (numpy's generator
    seeded by ``(seed, epoch)``), laid end to end; global batch ``b`` is positions
    ``[b * batch_size, (b + 1) * batch_size)`` of that sequence (batches run across epoch ends)
    and host ``h`` takes its ``h``-th chunk of ``batch_size // process_count``. So global batch
    ``b`` is the same windows in the same order however many hosts there are. Item ``i``: int64
    [batch_size // process_count]. One slice of a cached permutation per batch: grain's
    element-wise index shuffle and batching cost ~2 ms of Python per batch.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, process_index: int = 0,
                 process_count: int = 1):
        if num_items < 1:
            raise ValueError("no training windows to shuffle")
        self.num_items, self.seed = num_items, seed
        self.per_host, self.process_index, self.process_count = batch_size // process_count, process_index, process_count
        self._permutations: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()  # grain's read threads ask concurrently

    def __len__(self) -> int:
        return sys.maxsize

    def __getstate__(self) -> dict:  # for grain's worker processes: no lock, no cached epochs
        return {k: v for k, v in self.__dict__.items() if k not in ("_permutations", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _permutations={}, _lock=threading.Lock())

    def permutation(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._permutations:
                if len(self._permutations) >= 4:
                    del self._permutations[min(self._permutations)]
                self._permutations[epoch] = np.random.default_rng((self.seed, epoch)).permutation(self.num_items)
            return self._permutations[epoch]

    def __getitem__(self, index: int) -> np.ndarray:
        position = (index * self.process_count + self.process_index) * self.per_host
        end, parts = position + self.per_host, []
        while position < end:  # one slice per epoch the batch touches, not whole epochs copied
            epoch, offset = divmod(position, self.num_items)
            parts.append(self.permutation(epoch)[offset:offset + end - position])
            position += len(parts[-1])
        return np.concatenate(parts)


def shuffled_batches(source: WindowSource, batch_size: int, seed: int, process_index: int, process_count: int,
                     read_threads: int = 1, worker_count: int = 0) -> grain.IterDataset:
    """Infinite, seeded, shuffled batches of ``batch_size // process_count`` windows of ``source``
    for this host (``ShuffledIndexBatches``: each host reads and decodes only its own disjoint
    share of every global batch); ``worker_count`` > 0 adds grain worker processes.
    """
    indices = ShuffledIndexBatches(len(source), batch_size, seed, process_index, process_count)
    ds = grain.MapDataset.source(indices).map(source.batch)
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
    mine = np.full(num_batches * per_host, -1, np.int64)  # -1: padding examples fill the last batches
    share = np.arange(process_index, len(source), process_count)
    mine[:len(share)] = share
    ds = grain.MapDataset.source(mine.reshape(num_batches, per_host)).map(source.batch)
    yield from ds.to_iter_dataset(grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=4))
