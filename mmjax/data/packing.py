"""Packing each window's utterances into fewer token rows, so the text encoder skips padding.

A window pads every one of its ``T`` turns to ``L`` tokens; on real corpora most of that is
padding (MELD, CMMA: 23-25% of a batch's [B, T, L] token slots are real), and the text encoder's
cost grows with the slots, not the tokens. ``pack`` places each window's utterances into rows of
``L`` tokens, first fit by decreasing length, several utterances to a row, and gives every
window of the batch ``P`` rows: the most any of them needs, rounded up to a multiple of
``row_multiple`` (at most ``T``), so a corpus meets a few shapes, each compiled once. Rows stay
inside their window: the batch axis, and how it is sharded, do not change.

A packed batch has, instead of ``tokens``::

    packed_tokens     int32 [B, P, L]  token ids, 0 on padding
    packed_segments   int32 [B, P, L]  1 + the turn of the utterance a token belongs to, 0 on padding
    packed_positions  int32 [B, P, L]  the token's position in its utterance
    packed_index      int32 [B, T, L]  where token l of turn t lies in its window's rows:
                                       row * L + column (0 on padding)

The model encodes the rows, a token attending only within its own segment and embedded at its
own position (so each utterance's states are those it gets alone), and gathers them back to
[B, T, L] with ``packed_index`` (``AffectModel._text_states``).
"""

from __future__ import annotations

import numpy as np

PACKED_TOKENS, PACKED_SEGMENTS, PACKED_POSITIONS = "packed_tokens", "packed_segments", "packed_positions"
PACKED_INDEX = "packed_index"
PACKED_KEYS = (PACKED_TOKENS, PACKED_SEGMENTS, PACKED_POSITIONS)  # a text encoder's (tokens, mask, positions)


def row_multiple(max_turns: int) -> int:
    """Rows are rounded up to multiples of this: at most 6 shapes per corpus, whatever ``max_turns``."""
    return -(-max_turns // 6)


def assign_rows(lengths: np.ndarray, max_tokens: int) -> tuple[np.ndarray, np.ndarray, int]:
    """First-fit decreasing of each window's utterances into rows of ``max_tokens``, all windows at
    once: the k-th longest utterance of every window goes to the first of its rows with room.

    lengths: int [B, T] tokens per turn (0: padding turn, placed nowhere) -> (row int [B, T],
    column where the utterance starts int [B, T], the most rows a window uses).
    """
    B, T = lengths.shape
    filled = np.zeros((B, T), np.int64)  # tokens in each window's rows; at most T rows are ever needed
    row, column = np.zeros((B, T), np.int64), np.zeros((B, T), np.int64)
    windows = np.arange(B)
    for turn in np.argsort(-lengths, axis=1, kind="stable").T:  # [B]: each window's k-th longest turn
        n = lengths[windows, turn]
        r = np.argmax(filled + n[:, None] <= max_tokens, axis=1)  # an empty row always fits
        row[windows, turn], column[windows, turn] = r, filled[windows, r]
        filled[windows, r] += n
    return row, column, int((filled > 0).sum(1).max(initial=0))


def pack(batch: dict, row_multiple: int = 1, rows: int | None = None) -> dict:
    """``batch`` (``pipeline.empty_batch``'s layout, [B, T, ...]) with its ``tokens`` packed into
    rows (module docstring); every other key unchanged. ``rows`` fixes P (the unpacked worst case
    is ``T``); by default the fewest rows that hold every window, rounded up to ``row_multiple``.
    """
    tokens, mask = batch["tokens"], batch["token_mask"]
    B, T, L = tokens.shape
    lengths = mask.sum(-1)
    if not np.array_equal(mask, np.arange(L) < lengths[..., None]):
        raise ValueError("token_mask must be True on a prefix of each utterance's row to pack it")
    row, column, needed = assign_rows(lengths, L)
    needed = max(needed, 1)
    if rows is None:
        rows = min(T, -(-needed // row_multiple) * row_multiple)
    elif rows < needed:
        raise ValueError(f"the batch's windows need {needed} rows of {L} tokens, more than rows={rows}")
    b, t, position = np.nonzero(mask)
    r, c = row[b, t], column[b, t] + position
    out = {key: value for key, value in batch.items() if key != "tokens"}
    for key, values in ((PACKED_TOKENS, tokens[b, t, position]), (PACKED_SEGMENTS, t + 1),
                        (PACKED_POSITIONS, position)):
        out[key] = np.zeros((B, rows, L), np.int32)
        out[key][b, r, c] = values
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
