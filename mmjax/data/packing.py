"""Packing a batch's utterances into fewer token rows, so the text encoder skips padding.

A window pads every one of its ``T`` turns to ``L`` tokens; on real corpora most of that is
padding (MELD, CMMA: 23-25% of a batch's [B, T, L] token slots are real), and the text encoder's
cost grows with the slots, not the tokens. ``pack`` places utterances into rows of ``L``
tokens, best fit by decreasing length, several to a row. Rows belong to *groups* of windows:
one group per device and gradient-accumulation micro-batch (``Packing``), so that every
utterance's row lies on the device that holds its window and in its micro-batch: the batch is
split over devices in contiguous blocks of windows, and into micro-batches by stride (window
w goes to micro-batch w % microbatches, ``train_step._micro_batches``). With one device and no
accumulation the whole batch is one group. Every group gets ``P`` rows, the most any group
needs rounded up to a multiple of 1/16 of its worst case, so a corpus meets a few shapes, each
compiled once.

A packed batch has, instead of ``tokens``::

    packed_tokens     int32 [G, P, L]  token ids, 0 on padding
    packed_segments   int32 [G, P, L]  1 + the utterance's place in its group, 0 on padding
    packed_positions  int32 [G, P, L]  the token's position in its utterance
    packed_index      int32 [B, T, L]  where token l of turn t lies among its group's rows:
                                       row * L + column (0 on padding)

The groups are ordered device by device, micro-batch by micro-batch (group d * microbatches + j),
so a micro-batch's groups and windows split alike, and within it each group's windows form one
contiguous block: the model encodes the rows (a token attends only within its own segment and is
embedded at its own position, so each utterance's states are those it gets alone) and gathers
each group's states back to [B, T, L] with ``packed_index`` (``AffectModel._text_states``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

PACKED_TOKENS, PACKED_SEGMENTS, PACKED_POSITIONS = "packed_tokens", "packed_segments", "packed_positions"
PACKED_INDEX = "packed_index"
PACKED_KEYS = (PACKED_TOKENS, PACKED_SEGMENTS, PACKED_POSITIONS)  # a text encoder's (tokens, mask, positions)


@dataclasses.dataclass(frozen=True)
class Packing:
    """How a host batch's windows split into groups: ``devices`` blocks of consecutive windows
    (this host's data-parallel devices) times ``microbatches`` strided micro-batches."""

    devices: int = 1
    microbatches: int = 1

    @property
    def groups(self) -> int:
        return self.devices * self.microbatches

    def group_of(self, windows: int) -> np.ndarray:
        """int [windows]: the group of each window of a host batch of ``windows``."""
        if windows % self.groups or (windows // self.devices) % self.microbatches:
            raise ValueError(f"{windows} windows do not split into {self.devices} devices x "
                             f"{self.microbatches} micro-batches")
        w = np.arange(windows)
        return (w // (windows // self.devices)) * self.microbatches + w % self.microbatches


def assign_rows(lengths: np.ndarray, max_tokens: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Best-fit decreasing of each group's utterances into rows of ``max_tokens``: longest first,
    each into the open row it fills most tightly, a new row when none has room (rows kept in
    lists by free room, so a placement looks at most ``max_tokens`` lists).

    lengths: int [G, U] tokens per utterance (0: padding, placed nowhere) -> (row int [G, U],
    column where the utterance starts int [G, U], the most rows a group uses).
    """
    row, column, most = np.zeros(lengths.shape, np.int64), np.zeros(lengths.shape, np.int64), 0
    for g, group in enumerate(lengths.tolist()):
        by_room: list[list[int]] = [[] for _ in range(max_tokens + 1)]  # free room -> open rows
        filled: list[int] = []
        for u in sorted(range(len(group)), key=lambda u: -group[u]):
            n = group[u]
            if n == 0:
                break
            room = next((room for room in range(n, max_tokens + 1) if by_room[room]), None)
            r = by_room[room].pop() if room is not None else len(filled)
            if room is None:
                filled.append(0)
            row[g, u], column[g, u] = r, filled[r]
            filled[r] += n
            by_room[max_tokens - filled[r]].append(r)
        most = max(most, len(filled))
    return row, column, most


def pack(batch: dict, packing: Packing = Packing(), rows: int | None = None) -> dict:
    """``batch`` (``pipeline.empty_batch``'s layout, [B, T, ...]) with its ``tokens`` packed into
    the rows of ``packing``'s groups (module docstring); every other key unchanged. ``rows`` fixes
    P (the worst case is B / groups * T); by default the fewest rows that hold every group,
    rounded up to a sixteenth of the worst case.
    """
    tokens, mask = batch["tokens"], batch["token_mask"]
    B, T, L = tokens.shape
    lengths = mask.sum(-1)
    if not np.array_equal(mask, np.arange(L) < lengths[..., None]):
        raise ValueError("token_mask must be True on a prefix of each utterance's row to pack it")
    G, group = packing.groups, packing.group_of(B)
    order = np.argsort(group, kind="stable")  # windows by group: [G, B/G] blocks
    grouped_rows, grouped_columns, needed = assign_rows(lengths[order].reshape(G, -1), L)  # [G, B/G * T]
    row, column = np.empty((B, T), np.int64), np.empty((B, T), np.int64)
    row[order], column[order] = grouped_rows.reshape(B, T), grouped_columns.reshape(B, T)
    most = B // G * T
    if rows is None:
        step = -(-most // 16)
        rows = min(most, -(-max(needed, 1) // step) * step)
    elif rows < needed:
        raise ValueError(f"the batch's groups need {needed} rows of {L} tokens, more than rows={rows}")
    b, t, position = np.nonzero(mask)
    g, r, c = group[b], row[b, t], column[b, t] + position
    segment = (np.argsort(order)[b] % (B // G)) * T + t + 1  # the utterance's place in its group
    out = {key: value for key, value in batch.items() if key != "tokens"}
    for key, values in ((PACKED_TOKENS, tokens[b, t, position]), (PACKED_SEGMENTS, segment),
                        (PACKED_POSITIONS, position)):
        out[key] = np.zeros((G, rows, L), np.int32)
        out[key][g, r, c] = values
    out[PACKED_INDEX] = np.zeros((B, T, L), np.int32)
    out[PACKED_INDEX][b, t, position] = r * L + c
    return out


def num_rows(batch: dict) -> int:
    """P of a packed batch."""
    return batch[PACKED_TOKENS].shape[1]


def pad_rows(batch: dict, rows: int) -> dict:
    """A packed ``batch`` with empty rows appended up to ``rows`` (hosts of one global batch agree on P)."""
    extra = rows - num_rows(batch)
    if extra < 0:
        raise ValueError(f"cannot pad {num_rows(batch)} packed rows down to {rows}")
    return {key: np.pad(value, ((0, 0), (0, extra), (0, 0))) if key in PACKED_KEYS else value
            for key, value in batch.items()}
