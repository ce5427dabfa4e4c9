import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.models import layers


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_keep_mask_keeps_each_entry_with_probability_one_minus_rate_independently(rate):
    masks = np.stack([np.asarray(layers.keep_mask(jax.random.key(k), rate, (64, 1000))) for k in range(4)])
    n = masks[0].size
    for mask in masks:  # each key: the kept fraction within 5 binomial standard deviations
        assert abs(mask.mean() - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / n)
    # different keys give unrelated masks: agreement as for independent draws
    agreement = (masks[0] == masks[1]).mean()
    expected = rate ** 2 + (1 - rate) ** 2
    assert abs(agreement - expected) < 5 * np.sqrt(expected * (1 - expected) / n)
    # neighbouring entries are uncorrelated (a hash of the index, not a stride pattern)
    flat = masks[0].reshape(-1).astype(float)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 5 / np.sqrt(n)
    # a key split off another one does not give a shifted copy of its mask
    child = np.asarray(layers.keep_mask(jax.random.fold_in(jax.random.key(0), 1), rate, (64, 1000)))
    assert not any(np.array_equal(np.roll(child.reshape(-1), s), masks[0].reshape(-1)) for s in range(-3, 4))


def test_dropout_scales_kept_entries_shares_broadcast_dims_and_is_identity_when_deterministic():
    x = jnp.ones((8, 50, 16))
    module = layers.Dropout(0.25, broadcast_dims=(-1,))
    np.testing.assert_array_equal(module.apply({}, x, deterministic=True), x)
    y = np.asarray(module.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(3)}))
    assert set(np.unique(y).tolist()) <= {0.0, np.float32(1 / 0.75).item()}
    assert (y == y[..., :1]).all()  # one mask value per broadcast row
    again = module.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(3)})
    np.testing.assert_array_equal(again, y)
    other = module.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(4)})
    assert not np.array_equal(other, y)
    assert (layers.Dropout(1.0).apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)}) == 0).all()


def test_dot_product_kernel_matches_einsum_with_bias_masks_and_fully_masked_queries():
    rng = np.random.default_rng(0)
    query = jnp.asarray(rng.normal(size=(2, 3, 5, 16)), jnp.float32)  # [batch, rows, q, embed]
    key_value = jnp.asarray(rng.normal(size=(2, 3, 6, 16)), jnp.float32)
    mask = rng.random((2, 3, 5, 6)) < 0.6
    mask[0, 1, 2] = False  # a query that attends to nothing outputs zeros in both kernels
    bias = jnp.asarray(rng.normal(size=(2, 3, 4, 5, 6)), jnp.float32)
    outputs = {}
    for kernel in layers.ATTENTION_KERNELS:
        module = layers.Attention(num_heads=4, kernel=kernel)
        params = module.init(jax.random.key(0), query, key_value, mask, bias)  # same names, same init
        outputs[kernel] = np.asarray(module.apply(params, query, key_value, mask, bias))
    np.testing.assert_allclose(outputs["dot_product"], outputs["einsum"], rtol=1e-5, atol=1e-5)
    out_bias = np.asarray(nn.meta.unbox(params)["params"]["out_bias"])
    np.testing.assert_allclose(outputs["dot_product"][0, 1, 2], out_bias, atol=1e-6)
    assert np.abs(outputs["einsum"][0, 1, 1] - out_bias).max() > 1e-3  # the others attend


def test_unknown_attention_kernel_is_an_error():
    x = jnp.zeros((1, 2, 8))
    with pytest.raises(ValueError, match="attention kernel 'flash'"):
        layers.Attention(num_heads=2, kernel="flash").init(jax.random.key(0), x, x, jnp.ones((1, 2, 2), bool))


@pytest.mark.parametrize("kernel", layers.ATTENTION_KERNELS)
def test_a_single_query_gives_what_the_projected_keys_and_values_give(kernel):
    rng = np.random.default_rng(1)
    query = jnp.asarray(rng.normal(size=(3, 2, 1, 16)), jnp.float32)  # [batch, rows, 1 query, embed]
    key_value = jnp.asarray(rng.normal(size=(3, 2, 6, 16)), jnp.float32)
    mask = rng.random((3, 2, 1, 6)) < 0.6
    mask[1, 0] = False  # attends to nothing: zeros before the output projection
    bias = jnp.asarray(rng.normal(size=(3, 2, 4, 1, 6)), jnp.float32)
    module = layers.Attention(num_heads=4, kernel=kernel)
    params = module.init(jax.random.key(0), query, key_value, mask, bias)
    params = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), x.dtype), nn.meta.unbox(params))
    one = module.apply(params, query, key_value, mask, bias)
    # Two copies of the query take the path that projects keys and values; their first row is the same query.
    twice = lambda x, axis: jnp.concatenate([x, x], axis)  # noqa: E731
    two = module.apply(params, twice(query, -2), key_value, twice(mask, -2), twice(bias, -2))
    np.testing.assert_allclose(one, two[..., :1, :], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(one[1, 0, 0], params["params"]["out_bias"], atol=1e-5)
