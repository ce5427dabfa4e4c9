import numpy as np
import pytest

from mmjax.data import packing


def _batch(lengths, max_tokens, seed=0):
    """A window batch with utterances of ``lengths`` [B, T] tokens (ids from 1)."""
    lengths = np.asarray(lengths)
    mask = np.arange(max_tokens) < lengths[..., None]
    tokens = np.where(mask, np.random.default_rng(seed).integers(1, 50, mask.shape), 0).astype(np.int32)
    return {"tokens": tokens, "token_mask": mask, "turn_mask": lengths > 0}


def test_packed_rows_hold_every_token_once_at_its_place_and_position():
    batch = _batch([[5, 3, 8, 2, 0, 0], [8, 8, 8, 1, 1, 0]], max_tokens=8)
    packed = packing.pack(batch)
    B, T, L = batch["tokens"].shape
    assert packing.num_rows(packed) == 4  # window 1: three full rows and one with both singles
    assert "tokens" not in packed and packed["turn_mask"] is batch["turn_mask"]
    for key in packing.PACKED_KEYS:
        assert packed[key].shape == (B, 4, L) and packed[key].dtype == np.int32
    flat = {k: packed[k].reshape(B, -1) for k in packing.PACKED_KEYS}
    b, t, position = np.nonzero(batch["token_mask"])
    slot = packed[packing.PACKED_INDEX][b, t, position]
    np.testing.assert_array_equal(flat[packing.PACKED_TOKENS][b, slot], batch["tokens"][b, t, position])
    np.testing.assert_array_equal(flat[packing.PACKED_SEGMENTS][b, slot], t + 1)
    np.testing.assert_array_equal(flat[packing.PACKED_POSITIONS][b, slot], position)
    # No slot holds two tokens, and nothing else is marked as a token.
    assert len(set(zip(b.tolist(), slot.tolist()))) == len(b) == (packed[packing.PACKED_SEGMENTS] > 0).sum()
    # An utterance never spans two rows.
    rows = slot // L
    for window, turn in set(zip(b.tolist(), t.tolist())):
        assert len(set(rows[(b == window) & (t == turn)].tolist())) == 1


def test_rows_are_rounded_up_to_the_multiple_but_never_beyond_the_turns():
    batch = _batch([[4, 4, 4, 4, 4, 0]], max_tokens=4)
    assert packing.num_rows(packing.pack(batch)) == 5
    assert packing.num_rows(packing.pack(batch, row_multiple=2)) == 6
    assert packing.num_rows(packing.pack(batch, row_multiple=4)) == 6  # capped at T
    assert packing.num_rows(packing.pack(_batch([[0, 0]], 4))) == 1  # all padding: one empty row
    assert packing.row_multiple(12) == 2 and packing.row_multiple(6) == 1


def test_fixed_and_padded_rows_and_their_errors():
    batch = _batch([[3, 3, 3]], max_tokens=4)
    with pytest.raises(ValueError, match="need 3 rows"):
        packing.pack(batch, rows=2)
    packed = packing.pack(batch)
    padded = packing.pad_rows(packed, 5)
    assert packing.num_rows(padded) == 5 and (padded[packing.PACKED_SEGMENTS][:, 3:] == 0).all()
    np.testing.assert_array_equal(padded[packing.PACKED_INDEX], packed[packing.PACKED_INDEX])
    with pytest.raises(ValueError, match="down to"):
        packing.pad_rows(packed, 2)
    holes = dict(batch, token_mask=batch["token_mask"].copy())
    holes["token_mask"][0, 0, 0] = False
    with pytest.raises(ValueError, match="prefix"):
        packing.pack(holes)
