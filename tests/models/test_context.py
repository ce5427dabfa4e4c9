import flax.linen as nn
import jax
import numpy as np
import pytest

from mmjax.models import context
from tests.tiny import quick_jit

K = 2  # previous turns attended to
WIDTH = 16


def _inputs(turns, rng):
    """x [2, turns, WIDTH]; speakers [2, turns]; turn_mask [2, turns]: 6 and 4 real turns, junk
    (also in the speaker ids) on padding."""
    x = rng.normal(size=(2, turns, WIDTH)).astype(np.float32)
    speakers = rng.integers(0, 3, (2, turns)).astype(np.int32)
    turn_mask = np.arange(turns)[None, :] < np.array([[6], [4]])
    return x, speakers, turn_mask


INTERACTIONS = pytest.mark.parametrize("interaction", context.INTERACTIONS)


def _model_and_apply(interaction):
    if interaction == "attention":
        module = context.ContextInteraction(context_turns=K, num_heads=2, mlp_dim=WIDTH)
    else:
        module = context.PreviousTurns(context_turns=K)
    x, speakers, turn_mask = _inputs(6, np.random.default_rng(0))
    params = nn.meta.unbox(quick_jit(module.init)(jax.random.key(0), x, speakers, turn_mask))
    if interaction == "attention":
        # Non-zero speaker-relation bias (it starts at 0): same-speaker turns strongly preferred.
        params["params"]["speaker_relation_bias"] = np.array([[-3.0, -3.0], [3.0, 3.0]], np.float32)
    else:  # the map starts at zero (no context at all): a random one
        kernel = params["params"]["projection"]["kernel"]
        params["params"]["projection"]["kernel"] = np.random.default_rng(2).normal(size=kernel.shape).astype(np.float32)
    apply = quick_jit(module.apply)
    return lambda *a: np.asarray(apply(params, *a))


def test_previous_turns_start_as_no_context():
    module = context.PreviousTurns(context_turns=K)
    x, speakers, turn_mask = _inputs(6, np.random.default_rng(0))
    params = quick_jit(module.init)(jax.random.key(0), x, speakers, turn_mask)
    np.testing.assert_array_equal(np.asarray(quick_jit(module.apply)(params, x, speakers, turn_mask)), x)


@INTERACTIONS
def test_padding_turns_change_no_real_turn(interaction):
    apply = _model_and_apply(interaction)
    x, speakers, turn_mask = _inputs(6, np.random.default_rng(0))
    before = apply(x, speakers, turn_mask)
    junk_x, junk_speakers, padded_mask = _inputs(9, np.random.default_rng(1))
    keep = np.pad(turn_mask, [(0, 0), (0, 3)])
    padded_x = np.where(keep[..., None], np.pad(x, [(0, 0), (0, 3), (0, 0)]), junk_x)
    padded_speakers = np.where(keep, np.pad(speakers, [(0, 0), (0, 3)]), junk_speakers)
    after = apply(padded_x, padded_speakers, padded_mask)
    np.testing.assert_allclose(after[:, :6][turn_mask], before[turn_mask], rtol=1e-5, atol=1e-5)


@INTERACTIONS
def test_each_turn_sees_exactly_its_previous_k_turns(interaction):
    apply = _model_and_apply(interaction)
    x, speakers, turn_mask = _inputs(6, np.random.default_rng(0))
    before = apply(x, speakers, turn_mask)
    t = 4
    for other, seen in [(t - K - 1, False), (t - K, True), (t - 1, True), (t + 1, False)]:
        moved = x.copy()
        moved[0, other] = x[1, 0]
        changed = apply(moved, speakers, turn_mask)
        assert np.allclose(changed[0, t], before[0, t], atol=1e-5) != seen, (other, seen)


@INTERACTIONS
def test_speaker_relations_not_identities_matter(interaction):
    apply = _model_and_apply(interaction)
    x, _, turn_mask = _inputs(6, np.random.default_rng(0))
    speakers = np.array([[0, 1, 0, 1, 0, 1], [0, 1, 0, 1, 0, 0]], np.int32)
    before = apply(x, speakers, turn_mask)
    renamed = apply(x, np.where(speakers == 0, 7, 3).astype(np.int32), turn_mask)
    np.testing.assert_allclose(renamed, before, rtol=1e-5, atol=1e-5)
    # Turn 3 now speaks as turn 5 does: for turn 5, turn 3 goes from other to same speaker.
    swapped = speakers.copy()
    swapped[0, 3] = 0
    assert not np.allclose(apply(x, swapped, turn_mask)[0, 5], before[0, 5], atol=1e-3)
