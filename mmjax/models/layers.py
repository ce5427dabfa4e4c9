"""Building blocks with logical axis names on every parameter.

Logical names used here (mapped to mesh axes by ``config.mesh.rules``): ``embed`` (model width),
``mlp`` (feed-forward width), ``heads``/``kv`` (attention heads and head width), ``vocab``,
``positions``, ``features`` (input feature dims), ``tasks`` (soft-sharing towers), ``norm``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Dtype = Any
default_kernel = nn.initializers.xavier_uniform()
# Attention kernels are [embed, heads, head_dim] / [heads, head_dim, embed]: fans over (heads, head_dim).
_projection_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform", in_axis=0, out_axis=(1, 2))
_output_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform", in_axis=(0, 1), out_axis=2)


def dense(features, axes: tuple[str, str], dtype: Dtype, name: str | None = None, use_bias=True):
    """nn.Dense whose kernel [in, out] carries logical ``axes`` and bias ``axes[1]``."""
    return nn.Dense(features, dtype=dtype, use_bias=use_bias, name=name,
                    kernel_init=nn.with_logical_partitioning(default_kernel, axes),
                    bias_init=nn.with_logical_partitioning(nn.initializers.zeros, axes[1:]))


def layer_norm(dtype: Dtype, name: str | None = None, epsilon: float = 1e-6):
    return nn.LayerNorm(dtype=dtype, name=name, epsilon=epsilon,
                        scale_init=nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("norm",)))


def token_pairs(mask: jax.Array) -> jax.Array:
    """bool [..., n, n]: which tokens of a row attend to which.

    mask: bool [..., n], one sequence per row; or int segment ids [..., n], 0 on padding, for rows
    that pack several sequences (``mmjax.data.packing``): a token attends within its own segment.
    """
    if mask.dtype == jnp.bool_:
        return mask[..., :, None] & mask[..., None, :]
    return (mask[..., :, None] == mask[..., None, :]) & (mask[..., :, None] > 0)


def padded_vocab_size(vocab_size: int, multiple: int = 128) -> int:
    """Vocabulary rounded up so the embedding table splits evenly over any mesh axis of size
    dividing ``multiple``; the extra rows are never indexed."""
    return -(-vocab_size // multiple) * multiple


def masked_mean(x: jax.Array, mask: jax.Array, axis: int) -> jax.Array:
    """Mean of ``x`` over ``axis`` where ``mask``; zero where nothing is unmasked.

    x: [..., n, d] with ``axis`` the n axis; mask: bool [..., n].
    """
    weights = jnp.expand_dims(mask, -1).astype(x.dtype)
    total = jnp.sum(x * weights, axis=axis)
    count = jnp.sum(weights, axis=axis)
    return total / jnp.maximum(count, 1)


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis restricted to ``mask``; rows with nothing unmasked give zeros."""
    scores = jnp.where(mask, scores.astype(jnp.float32), jnp.finfo(jnp.float32).min)
    weights = jax.nn.softmax(scores, axis=-1)
    return jnp.where(jnp.any(mask, axis=-1, keepdims=True), weights, 0.0)


def _mix32(x: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 whose every output bit depends on
    every input bit."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(0x85EBCA6B)
    x = x ^ (x >> 13)
    x = x * jnp.uint32(0xC2B2AE35)
    return x ^ (x >> 16)


def keep_mask(key: jax.Array, rate: float, shape: tuple[int, ...]) -> jax.Array:
    """bool ``shape``: each entry True with probability ``1 - rate`` (to 2**-32), independently of
    the others as far as dropout can tell.

    Two 32-bit words drawn from ``key`` seed a hash of each entry's index. ``jax.random.bernoulli``
    runs 20 Threefry rounds per entry: on a CPU that was a quarter of the tiny model's train step
    and a fifth of ``base``'s (BENCHMARKS.md); this is ~10 integer ops, fused into the consumer. An
    index is a global position, so a sharded array computes its own slice without communication.
    """
    size = int(np.prod(shape, dtype=np.int64))
    if size >= 2 ** 32:
        raise ValueError(f"dropout over {size} entries: at most 2**32 - 1 can be indexed")
    seed = jax.random.bits(key, (2,), jnp.uint32)
    index = jax.lax.iota(jnp.uint32, size).reshape(shape)
    bits = _mix32(_mix32(index ^ seed[0]) + seed[1])
    return bits >= jnp.uint32(min(round(rate * 2 ** 32), 2 ** 32 - 1))


class Dropout(nn.Module):
    """``flax.linen.Dropout`` (same arguments, same scaling by ``1 / (1 - rate)``) with its mask from
    ``keep_mask``. ``broadcast_dims``: axes that share one mask value (e.g. whole n-grams)."""

    rate: float
    broadcast_dims: tuple[int, ...] = ()

    @nn.compact
    def __call__(self, x, deterministic: bool = True):
        if deterministic or self.rate == 0.0:
            return x
        if self.rate >= 1.0:
            return jnp.zeros_like(x)
        shape = tuple(1 if d in {a % x.ndim for a in self.broadcast_dims} else n for d, n in enumerate(x.shape))
        keep = keep_mask(self.make_rng("dropout"), self.rate, shape)
        return jnp.where(keep, x / jnp.asarray(1.0 - self.rate, x.dtype), jnp.zeros((), x.dtype))


# config.model.attention: how attention weights are computed.
ATTENTION_KERNELS = ("einsum", "dot_product")


def _cudnn_applies(q: jax.Array, k: jax.Array) -> bool:
    """Whether cuDNN's fused attention takes these [n, length, heads, head_dim] inputs: an NVIDIA
    GPU, 16-bit floats, head width a multiple of 8 up to 128, and even lengths (scores with a mask
    or bias in the backward pass need them)."""
    head_dim = q.shape[-1]
    device = jax.devices()[0]
    nvidia = device.platform == "gpu" and "rocm" not in device.client.platform_version.lower()
    return (nvidia and q.dtype in (jnp.bfloat16, jnp.float16)
            and head_dim % 8 == 0 and head_dim <= 128 and q.shape[-3] % 2 == 0 and k.shape[-3] % 2 == 0)


def dot_product_attention(q, k, v, mask, bias=None) -> jax.Array:
    """``jax.nn.dot_product_attention`` over any leading axes: cuDNN's fused flash kernel where
    ``_cudnn_applies``, XLA's otherwise. Fully masked queries output zeros, as ``masked_softmax``.

    q: [..., q, heads, d]; k, v: [..., k, heads, d]; mask: bool [..., q, k]; bias: optional
    [..., heads, q, k] -> [..., q, heads, d].
    """
    lead = q.shape[:-3]
    rows = lambda x, tail: jnp.broadcast_to(x, lead + x.shape[-tail:]).reshape((-1,) + x.shape[-tail:])  # noqa: E731
    q4, k4, v4 = rows(q, 3), rows(k, 3), rows(v, 3)
    mask4 = rows(mask, 2)[:, None]  # [n, 1, q, k]
    bias4 = None if bias is None else rows(bias, 3).astype(q.dtype)
    out = jax.nn.dot_product_attention(q4, k4, v4, bias4, mask4,
                                       implementation="cudnn" if _cudnn_applies(q4, k4) else None)
    attends = jnp.any(mask4[:, 0], axis=-1)[..., None, None]  # [n, q, 1, 1]
    return jnp.where(attends, out, jnp.zeros((), out.dtype)).reshape(q.shape)


class Attention(nn.Module):
    """Multi-head attention of ``query`` over ``key_value``; fully masked queries output zeros.

    query: [..., q, embed]; key_value: [..., k, embed]; mask: bool [..., q, k];
    bias: optional additive scores [..., heads, q, k]. Returns [..., q, embed].
    ``kernel``: "einsum" (scores, a float32 masked softmax and dropout on the attention weights)
    or "dot_product" (``dot_product_attention``: no dropout on the weights, fused on a GPU).

    A single query (q = 1: cross-modal fusion, attention pooling) is computed without projecting
    the keys and values: its scores are (W_k q_h) . x_j per head h, plus q_h . b_k, and its output
    W_v (sum_j a_hj x_j) + b_v sum_j a_hj. The same function and parameters, at O(embed^2 + k embed)
    per query instead of O(k embed^2).
    """

    num_heads: int
    dtype: Dtype = jnp.float32
    dropout: float = 0.0
    kernel: str = "einsum"

    @nn.compact
    def __call__(self, query, key_value, mask, bias=None, deterministic=True):
        width = query.shape[-1]
        if width % self.num_heads:
            raise ValueError(f"model width {width} is not divisible by num_heads={self.num_heads}")
        if self.kernel not in ATTENTION_KERNELS:
            raise ValueError(f"attention kernel {self.kernel!r} is not one of {ATTENTION_KERNELS}")
        head_dim = width // self.num_heads

        def projection(name):
            kernel = self.param(f"{name}_kernel", nn.with_logical_partitioning(
                _projection_init, ("embed", "heads", "kv")), (width, self.num_heads, head_dim))
            bias = self.param(f"{name}_bias", nn.with_logical_partitioning(
                nn.initializers.zeros, ("heads", "kv")), (self.num_heads, head_dim))
            return kernel.astype(self.dtype), bias.astype(self.dtype)

        def attention_weights(scores):  # [..., heads, q, k] -> masked softmax, dropped out (einsum kernel)
            scores = scores / jnp.sqrt(head_dim).astype(self.dtype)
            if bias is not None:
                scores = scores + bias
            weights = masked_softmax(scores, jnp.expand_dims(mask, -3)).astype(self.dtype)
            rate = self.dropout if self.kernel == "einsum" else 0.0
            return Dropout(rate)(weights, deterministic=deterministic)

        (wq, bq), (wk, bk), (wv, bv) = projection("query"), projection("key"), projection("value")
        q = jnp.einsum("...d,dhk->...hk", query, wq) + bq  # [..., q, heads, head_dim]
        if query.shape[-2] == 1:
            query_keys = jnp.einsum("...qhk,dhk->...qhd", q, wk)  # [..., 1, heads, embed]
            weights = attention_weights(jnp.einsum("...qhd,...kd->...hqk", query_keys, key_value)
                                        + jnp.einsum("...qhk,hk->...hq", q, bk)[..., None])
            mixed = jnp.einsum("...hqk,...kd->...qhd", weights, key_value)  # [..., 1, heads, embed]
            out = jnp.einsum("...qhd,dhk->...qhk", mixed, wv) + jnp.swapaxes(weights.sum(-1), -1, -2)[..., None] * bv
        else:
            k = jnp.einsum("...d,dhk->...hk", key_value, wk) + bk
            v = jnp.einsum("...d,dhk->...hk", key_value, wv) + bv
            if self.kernel == "dot_product":
                out = dot_product_attention(q, k, v, mask, bias)
            else:
                weights = attention_weights(jnp.einsum("...qhd,...khd->...hqk", q, k))
                out = jnp.einsum("...hqk,...khd->...qhd", weights, v)
        out_kernel = self.param("out_kernel", nn.with_logical_partitioning(
            _output_init, ("heads", "kv", "embed")), (self.num_heads, head_dim, width))
        out_bias = self.param("out_bias", nn.with_logical_partitioning(
            nn.initializers.zeros, ("embed",)), (width,))
        return jnp.einsum("...qhd,hde->...qe", out, out_kernel.astype(self.dtype)) + out_bias.astype(self.dtype)


class MLP(nn.Module):
    """[..., embed] -> [..., embed] through a gelu hidden layer of ``hidden`` units."""

    hidden: int
    dtype: Dtype = jnp.float32
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, deterministic=True):
        h = nn.gelu(dense(self.hidden, ("embed", "mlp"), self.dtype, name="wi")(x))
        h = Dropout(self.dropout)(h, deterministic=deterministic)
        return dense(x.shape[-1], ("mlp", "embed"), self.dtype, name="wo")(h)


class TransformerLayer(nn.Module):
    """Pre-norm self-attention + MLP block. x: [..., n, embed]; mask: bool [..., n] or segment
    ids (``token_pairs``)."""

    num_heads: int
    mlp_dim: int
    dtype: Dtype = jnp.float32
    dropout: float = 0.0
    attention: str = "einsum"  # Attention.kernel

    @nn.compact
    def __call__(self, x, mask, deterministic=True):
        pair_mask = token_pairs(mask)
        y = layer_norm(self.dtype, "pre_attention_norm")(x)
        h = Attention(self.num_heads, self.dtype, self.dropout, self.attention, name="attention")(
            y, y, pair_mask, deterministic=deterministic)
        x = x + Dropout(self.dropout)(h, deterministic=deterministic)
        h = MLP(self.mlp_dim, self.dtype, self.dropout, name="mlp")(
            layer_norm(self.dtype, "pre_mlp_norm")(x), deterministic=deterministic)
        return x + Dropout(self.dropout)(h, deterministic=deterministic)
