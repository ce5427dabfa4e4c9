import numpy as np
import pytest

from mmjax.data import packing


def _batch(lengths, max_tokens, seed=0):
    """A window batch with utterances of ``lengths`` [B, T] tokens (ids from 1)."""
    lengths = np.asarray(lengths)
    mask = np.arange(max_tokens) < lengths[..., None]
    tokens = np.where(mask, np.random.default_rng(seed).integers(1, 50, mask.shape), 0).astype(np.int32)
    return {"tokens": tokens, "token_mask": mask, "turn_mask": lengths > 0}


@pytest.mark.parametrize("groups, rows", [(packing.Packing(), 6), (packing.Packing(devices=2), 4),
                                          (packing.Packing(microbatches=2), 4)])
def test_packed_rows_hold_every_token_once_in_its_group_at_its_place_and_position(groups, rows):
    batch = _batch([[5, 3, 8, 2, 0, 0], [8, 8, 8, 1, 1, 0]], max_tokens=8)
    packed = packing.pack(batch, groups)
    B, T, L = batch["tokens"].shape
    assert packing.num_rows(packed) == rows  # both windows: 8 8 8 8 | 5 3 | 2 1 1; the second alone: 4
    assert "tokens" not in packed and packed["turn_mask"] is batch["turn_mask"]
    for key in packing.PACKED_KEYS:
        assert packed[key].shape == (groups.groups, rows, L) and packed[key].dtype == np.int32
    flat = {k: packed[k].reshape(groups.groups, -1) for k in packing.PACKED_KEYS}
    b, t, position = np.nonzero(batch["token_mask"])
    g = groups.group_of(B)[b]
    slot = packed[packing.PACKED_INDEX][b, t, position]
    np.testing.assert_array_equal(flat[packing.PACKED_TOKENS][g, slot], batch["tokens"][b, t, position])
    np.testing.assert_array_equal(flat[packing.PACKED_POSITIONS][g, slot], position)
    # One segment per utterance: a token's segment names exactly its own utterance.
    segment = flat[packing.PACKED_SEGMENTS][g, slot]
    assert len(set(zip(g.tolist(), segment.tolist()))) == len(set(zip(b.tolist(), t.tolist())))
    assert (segment > 0).all()
    # No slot holds two tokens, and nothing else is marked as a token.
    assert len(set(zip(g.tolist(), slot.tolist()))) == len(b) == (packed[packing.PACKED_SEGMENTS] > 0).sum()
    # An utterance never spans two rows.
    for window, turn in set(zip(b.tolist(), t.tolist())):
        assert len(set((slot[(b == window) & (t == turn)] // L).tolist())) == 1


def test_groups_are_device_blocks_split_by_micro_batch_stride():
    np.testing.assert_array_equal(packing.Packing(devices=2, microbatches=2).group_of(8), [0, 1, 0, 1, 2, 3, 2, 3])
    np.testing.assert_array_equal(packing.Packing(devices=4).group_of(8), [0, 0, 1, 1, 2, 2, 3, 3])
    with pytest.raises(ValueError, match="do not split"):
        packing.Packing(devices=2, microbatches=2).group_of(6)


def test_rows_are_rounded_up_to_a_sixteenth_of_the_worst_case():
    batch = _batch([[4] * 40], max_tokens=4)  # worst case 40 rows: multiples of 3
    assert packing.num_rows(packing.pack(batch)) == 40  # 40 needed: 42, capped at the worst case
    assert packing.num_rows(packing.pack(_batch([[4] * 20 + [0] * 20], max_tokens=4))) == 21
    assert packing.num_rows(packing.pack(_batch([[0, 0]], 4))) == 1  # all padding: one empty row


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
