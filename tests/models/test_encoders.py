import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.data import packing
from mmjax.models import encoders, layers
from tests.tiny import quick_jit

WIDTH = 16
LENGTHS = np.array([6, 3, 1, 0])  # real frames per row; the last row's modality is absent


def _encoders(attention="einsum"):
    common = dict(width=WIDTH, num_layers=1, num_heads=2, mlp_dim=WIDTH, dtype=np.float32, dropout=0.0,
                  attention=attention)
    return {kind: build(name=None, **common) for kind, build in encoders.FEATURE_ENCODERS.items()} | {
        "text": encoders.TextEncoder(vocab_size=50, max_positions=16, **common)}


def _inputs(kind, frames, rng):
    """(inputs [rows, frames, ...], mask [rows, frames]) with junk under the mask's False entries."""
    mask = np.arange(frames)[None, :] < LENGTHS[:, None]
    if kind == "text":
        return rng.integers(0, 50, (len(LENGTHS), frames)).astype(np.int32), mask
    return (rng.normal(size=(len(LENGTHS), frames, 5)) * 10).astype(np.float32), mask


@pytest.mark.parametrize("attention", layers.ATTENTION_KERNELS)
@pytest.mark.parametrize("kind", ["transformer", "conv_rnn", "text"])
def test_padding_and_masked_junk_change_no_real_output(kind, attention):
    encoder = _encoders(attention)[kind]
    apply = quick_jit(encoder.apply)
    inputs, mask = _inputs(kind, 6, np.random.default_rng(0))
    params = quick_jit(encoder.init)(jax.random.key(0), inputs, mask)
    before = np.asarray(apply(params, inputs, mask))
    assert before.shape == (len(LENGTHS), 6, WIDTH) and np.isfinite(before).all()

    # 4 more frames, and fresh junk in every masked position (old padding included).
    junk, padded_mask = _inputs(kind, 10, np.random.default_rng(1))
    padded = np.where(np.pad(mask, [(0, 0), (0, 4)]).reshape(padded_mask.shape + (1,) * (inputs.ndim - 2)),
                      np.pad(inputs, [(0, 0), (0, 4)] + [(0, 0)] * (inputs.ndim - 2)), junk)
    after = np.asarray(apply(params, padded, padded_mask))
    np.testing.assert_allclose(after[:, :6][mask], before[mask], rtol=1e-5, atol=1e-5)

    # ...while a real frame does matter (to its own and, through context, other real frames).
    moved = inputs.copy()
    moved[1, 2] = inputs[0, 0]
    changed = np.asarray(apply(params, moved, mask))
    assert not np.allclose(changed[1, :2], before[1, :2], atol=1e-4)


def test_hashed_ngrams_depend_on_order_and_content_and_stay_inside_the_utterance():
    tokens = jnp.array([[5, 6, 7, 0], [6, 5, 7, 9]], jnp.int32)
    mask = jnp.array([[True, True, True, False], [True, True, True, True]])
    ids, inside = encoders.hashed_ngrams(tokens, mask, 2, 1 << 20)
    np.testing.assert_array_equal(inside, [[True, True, False, False], [True, True, True, False]])
    assert ids[0, 0] != ids[1, 0]  # "5 6" and "6 5" differ
    assert int(ids.min()) >= 0 and int(ids.max()) < 1 << 20
    trigram_ids, _ = encoders.hashed_ngrams(tokens, mask, 3, 1 << 20)
    assert trigram_ids[0, 0] != ids[0, 0]  # orders hash apart
    again, _ = encoders.hashed_ngrams(tokens[:, :3], mask[:, :3], 2, 1 << 20)
    np.testing.assert_array_equal(again[0, :2], ids[0, :2])  # padding length does not move a bucket


def test_ngram_encoder_is_a_bag_ignoring_padding_and_order_across_ngrams():
    encoder = encoders.NgramEncoder(vocab_size=16, width=8, orders=2, buckets=64, ngram_init_scale=0.1)
    tokens = jnp.array([[1, 2, 3, 0, 0]], jnp.int32)
    mask = tokens > 0
    params = encoder.init(jax.random.key(0), tokens, mask)
    pooled = lambda t, m: layers.masked_mean(encoder.apply(params, t, m), m, axis=1)  # noqa: E731
    junk = jnp.array([[1, 2, 3, 9, 4]], jnp.int32)  # junk under the padding mask changes nothing
    np.testing.assert_allclose(pooled(tokens, mask), pooled(junk, mask), atol=1e-6)
    swapped = jnp.array([[2, 1, 3, 0, 0]], jnp.int32)  # same unigrams, other bigrams
    assert float(jnp.abs(pooled(tokens, mask) - pooled(swapped, mask)).max()) > 1e-3
    assert encoder.apply(params, tokens, mask).shape == (1, 5, 8)


def test_ngram_rows_start_at_zero_so_an_ngram_training_never_moved_adds_nothing():
    encoder = encoders.NgramEncoder(vocab_size=16, width=8, orders=2, buckets=64)
    tokens, swapped = jnp.array([[1, 2, 3]], jnp.int32), jnp.array([[2, 1, 3]], jnp.int32)
    params = encoder.init(jax.random.key(0), tokens, tokens > 0)
    states = lambda p, t: encoder.apply(p, t, t > 0)  # noqa: E731
    # Same unigrams, other bigrams: only the (untrained) bigram rows differ, and they are zero.
    np.testing.assert_array_equal(np.sort(states(params, tokens), 1), np.sort(states(params, swapped), 1))
    moved = jax.tree.map(lambda x: x, params)  # as if training had moved every row
    moved["params"]["ngram_embedding"]["embedding"] = 0.1 * jax.random.normal(jax.random.key(1), (64, 8))
    assert float(jnp.abs(jnp.sort(states(moved, tokens), 1) - jnp.sort(states(moved, swapped), 1)).max()) > 1e-3


def test_bert_encoder_states_are_the_same_packed_or_one_utterance_per_row():
    config = encoders.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=32, max_position_embeddings=16)
    lengths = np.array([[5, 3, 7, 0]])
    batch = {"tokens": np.where(np.arange(8) < lengths[..., None],
                                np.random.default_rng(0).integers(1, 40, (1, 4, 8)), 0).astype(np.int32),
             "token_mask": np.arange(8) < lengths[..., None]}
    packed = packing.pack(batch)
    assert packing.num_rows(packed) == 2
    encoder = encoders.BertEncoder(config)
    params = encoder.init(jax.random.key(0), batch["tokens"][0], batch["token_mask"][0])
    alone = encoder.apply(params, batch["tokens"][0], batch["token_mask"][0])  # [T, L, hidden]
    shared = encoder.apply(params, *(packed[k][0] for k in packing.PACKED_KEYS[:2]),
                           positions=packed[packing.PACKED_POSITIONS][0]).reshape(-1, 16)
    mask = batch["token_mask"][0]
    np.testing.assert_allclose(np.asarray(shared)[packed[packing.PACKED_INDEX][0][mask]], np.asarray(alone)[mask],
                               rtol=1e-5, atol=1e-5)
