"""Modality encoders: token text (from scratch, or BERT-family for pretrained checkpoints) and
pre-extracted feature sequences (audio, visual)."""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mmjax.errors import ConfigError
from mmjax.models import layers


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
    """float32 [length, width] fixed sinusoidal position encodings."""
    positions = np.arange(length)[:, None]
    frequencies = np.exp(-np.log(10000.0) * np.arange(0, width, 2) / width)
    table = np.zeros((length, width), np.float32)
    table[:, 0::2] = np.sin(positions * frequencies)
    table[:, 1::2] = np.cos(positions * frequencies)[:, :width // 2]
    return table


def position_embeddings(table: jax.Array, length: int, positions: jax.Array | None) -> jax.Array:
    """Rows of a [max_positions, width] table: [length, width] for positions 0..length-1, or
    [n, length, width] for int32 ``positions`` [n, length] (rows packing several utterances)."""
    return table[:length] if positions is None else jnp.take(table, positions, axis=0)


class TextEncoder(nn.Module):
    """Token ids -> contextual token states.

    tokens: int32 [n, tokens]; mask: bool [n, tokens], or int32 segment ids with ``positions``
    int32 [n, tokens] for rows that pack several utterances (``mmjax.data.packing``: a token
    attends within its utterance and is embedded at its position in it) -> [n, tokens, width].
    Learned positions up to ``max_positions``, so the parameters do not depend on the padded length.
    """

    vocab_size: int
    width: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    max_positions: int = 512
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0
    attention: str = "einsum"  # layers.Attention.kernel

    @nn.compact
    def __call__(self, tokens, mask, deterministic=True, positions=None):
        if tokens.shape[-1] > self.max_positions:
            raise ValueError(f"{tokens.shape[-1]} tokens per utterance exceed max_positions={self.max_positions}")
        embed = nn.Embed(self.vocab_size, self.width, dtype=self.dtype, name="token_embedding",
                         embedding_init=nn.with_logical_partitioning(
                             nn.initializers.normal(0.02), ("vocab", "embed")))
        table = self.param("position_embedding", nn.with_logical_partitioning(
            nn.initializers.normal(0.02), ("positions", "embed")), (self.max_positions, self.width))
        x = embed(tokens) + position_embeddings(table, tokens.shape[-1], positions).astype(self.dtype)
        x = layers.Dropout(self.dropout)(x, deterministic=deterministic)
        for i in range(self.num_layers):
            x = layers.TransformerLayer(self.num_heads, self.mlp_dim, self.dtype, self.dropout, self.attention,
                                        name=f"layer_{i}")(x, mask, deterministic)
        return layers.layer_norm(self.dtype, "final_norm")(x)


# Odd 32-bit multipliers, one per position inside an n-gram (and per order, so "ab" and "ba"
# and the n-grams of different orders land in different buckets).
_NGRAM_MULTIPLIERS = (0x9E3779B1, 0x85EBCA77, 0xC2B2AE3D, 0x27D4EB2F, 0x165667B1, 0xD3A2646C | 1)
MAX_NGRAM_ORDER = len(_NGRAM_MULTIPLIERS)


def hashed_ngrams(tokens: jax.Array, mask: jax.Array, order: int, buckets: int) -> tuple[jax.Array, jax.Array]:
    """Bucket of the n-gram of ``order`` tokens that starts at each position, and whether it lies
    inside one utterance.

    tokens: int32 [n, L]; mask: bool [n, L] (one utterance per row, left-aligned), or int32
    segment ids [n, L] (0: padding) of rows packing several -> (int32 [n, L] in [0, buckets), bool [n, L]).
    A multiplicative hash in uint32 arithmetic (wraps, identical on every backend).
    """
    if not 1 <= order <= MAX_NGRAM_ORDER:
        raise ConfigError(f"n-gram order {order} is not in 1..{MAX_NGRAM_ORDER}")
    shift = lambda x, k: jnp.pad(x[:, k:], ((0, 0), (0, k)))  # noqa: E731  position i reads i + k
    segments = mask.astype(jnp.int32)  # a bool mask: every real token in segment 1
    value = jnp.full(tokens.shape, order, jnp.uint32)
    inside = segments > 0
    for k in range(order):
        value = (value ^ shift(tokens, k).astype(jnp.uint32)) * jnp.uint32(_NGRAM_MULTIPLIERS[k])
        inside = inside & (shift(segments, k) == segments)
    value = value ^ (value >> 15)
    return (value % jnp.uint32(buckets)).astype(jnp.int32), inside


class NgramEncoder(nn.Module):
    """Token ids -> bags of hashed n-gram embeddings, one per position (fastText-style).

    Position i's state is the sum of the embeddings of the n-grams of 1..``orders`` tokens that
    start at i and end inside the utterance: unigrams from a [vocab, width] table, longer ones
    from a shared [buckets, width] table by hash. Mean-pooled over the utterance, as the model
    pools every encoder, this is fastText's bag of n-grams (Joulin et al., 2017): no positions,
    no attention, little to overfit on small corpora. Each n-gram embedding is dropped with
    probability ``ngram_dropout`` in training (word dropout). The n-gram rows start at zero
    (``ngram_init_scale``: the standard deviation of a normal start instead): as in a linear model
    over n-gram counts, an n-gram no training utterance moved, such as most of those first seen
    at test time, adds nothing, where a random row would add noise.

    tokens: int32 [n, tokens]; mask: bool [n, tokens], or int32 segment ids of rows packing several
    utterances (``hashed_ngrams``) -> [n, tokens, width]. Positions play no part.
    """

    vocab_size: int
    width: int
    orders: int = 3
    buckets: int = 2 ** 18
    ngram_dropout: float = 0.0
    ngram_init_scale: float = 0.0
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0

    @nn.compact
    def __call__(self, tokens, mask, deterministic=True, positions=None):
        del positions  # a bag: the same n-grams wherever they stand
        init = nn.with_logical_partitioning(nn.initializers.normal(0.1), ("vocab", "embed"))
        unigrams = nn.Embed(self.vocab_size, self.width, dtype=self.dtype, embedding_init=init,
                            name="unigram_embedding")
        start = nn.initializers.normal(self.ngram_init_scale) if self.ngram_init_scale else nn.initializers.zeros
        ngrams = nn.Embed(self.buckets, self.width, dtype=self.dtype, name="ngram_embedding",
                          embedding_init=nn.with_logical_partitioning(start, ("vocab", "embed")))
        drop = layers.Dropout(self.ngram_dropout, broadcast_dims=(-1,))  # drops whole n-grams
        x = drop(unigrams(tokens) * (mask > 0)[..., None], deterministic=deterministic)
        for order in range(2, self.orders + 1):
            ids, inside = hashed_ngrams(tokens, mask, order, self.buckets)
            x = x + drop(ngrams(ids) * inside[..., None], deterministic=deterministic)
        x = layers.Dropout(self.dropout)(x, deterministic=deterministic)
        return layers.layer_norm(self.dtype, "final_norm")(x)


class SequenceEncoder(nn.Module):
    """Feature frames -> contextual frame states (Transformer with sinusoidal positions).

    features: float [n, frames, dim] of any ``dim``; mask: bool [n, frames] -> [n, frames, width].
    """

    width: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0
    attention: str = "einsum"  # layers.Attention.kernel

    @nn.compact
    def __call__(self, features, mask, deterministic=True):
        x = layers.layer_norm(self.dtype, "input_norm")(features.astype(self.dtype))
        x = layers.dense(self.width, ("features", "embed"), self.dtype, name="input_projection")(x)
        x = x + sinusoidal_positions(features.shape[-2], self.width).astype(self.dtype)
        x = layers.Dropout(self.dropout)(x, deterministic=deterministic)
        for i in range(self.num_layers):
            x = layers.TransformerLayer(self.num_heads, self.mlp_dim, self.dtype, self.dropout, self.attention,
                                        name=f"layer_{i}")(x, mask, deterministic)
        return layers.layer_norm(self.dtype, "final_norm")(x)


# Hugging Face ``hidden_act`` names -> functions. "gelu" is the exact erf form; the other two
# are the tanh approximation under their two names.
BERT_ACTIVATIONS = {"gelu": functools.partial(jax.nn.gelu, approximate=False),
                    "gelu_new": functools.partial(jax.nn.gelu, approximate=True),
                    "gelu_pytorch_tanh": functools.partial(jax.nn.gelu, approximate=True),
                    "relu": jax.nn.relu}


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Architecture of a BERT-family encoder: the fields of a Hugging Face ``config.json``."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu"

    def __post_init__(self):
        if self.hidden_act not in BERT_ACTIVATIONS:
            raise ValueError(f"hidden_act={self.hidden_act!r} is not one of {sorted(BERT_ACTIVATIONS)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                             f"num_attention_heads={self.num_attention_heads}")

    @property
    def vocab_rows(self) -> int:
        """Rows of the word-embedding table: the vocabulary padded for even sharding."""
        return layers.padded_vocab_size(self.vocab_size)


class BertLayer(nn.Module):
    """Post-norm Transformer layer as in BERT. x: [n, tokens, hidden]; mask: bool [n, tokens] or
    segment ids (``layers.token_pairs``)."""

    config: BertConfig
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0
    attention: str = "einsum"  # layers.Attention.kernel

    @nn.compact
    def __call__(self, x, mask, deterministic=True):
        c = self.config
        norm = functools.partial(layers.layer_norm, self.dtype, epsilon=c.layer_norm_eps)
        drop = lambda h: layers.Dropout(self.dropout)(h, deterministic=deterministic)  # noqa: E731
        h = layers.Attention(c.num_attention_heads, self.dtype, self.dropout, self.attention, name="attention")(
            x, x, layers.token_pairs(mask), deterministic=deterministic)
        x = norm(name="attention_norm")(x + drop(h))
        h = layers.dense(c.intermediate_size, ("embed", "mlp"), self.dtype, name="intermediate")(x)
        h = layers.dense(c.hidden_size, ("mlp", "embed"), self.dtype, name="output")(
            BERT_ACTIVATIONS[c.hidden_act](h))
        return norm(name="output_norm")(x + drop(h))


class BertEncoder(nn.Module):
    """BERT-family encoder (no pooler): token ids -> last hidden states, one segment (type 0).

    tokens: int32 [n, tokens]; mask: bool [n, tokens], or int32 segment ids with ``positions``
    (as ``TextEncoder``) -> [n, tokens, hidden_size]. Parameter names and layouts are those
    ``mmjax.models.pretrained`` fills from a Hugging Face checkpoint.
    """

    config: BertConfig
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0
    attention: str = "einsum"  # layers.Attention.kernel

    @nn.compact
    def __call__(self, tokens, mask, deterministic=True, positions=None):
        c = self.config
        if tokens.shape[-1] > c.max_position_embeddings:
            raise ValueError(f"{tokens.shape[-1]} tokens per utterance exceed the checkpoint's "
                             f"max_position_embeddings={c.max_position_embeddings}")
        table = lambda name, rows, axis: self.param(name, nn.with_logical_partitioning(  # noqa: E731
            nn.initializers.normal(0.02), (axis, "embed")), (rows, c.hidden_size))
        words = table("word_embeddings", c.vocab_rows, "vocab")
        position_table = table("position_embeddings", c.max_position_embeddings, "positions")
        token_types = table("token_type_embeddings", c.type_vocab_size, "token_types")
        x = (jnp.take(words, tokens, axis=0) + position_embeddings(position_table, tokens.shape[-1], positions)
             + token_types[0])
        x = layers.layer_norm(self.dtype, "embeddings_norm", c.layer_norm_eps)(x.astype(self.dtype))
        x = layers.Dropout(self.dropout)(x, deterministic=deterministic)
        for i in range(c.num_hidden_layers):
            x = BertLayer(c, self.dtype, self.dropout, self.attention, name=f"layer_{i}")(x, mask, deterministic)
        return x


class ConvRecurrentEncoder(nn.Module):
    """Feature frames -> frame states: ``num_layers`` residual temporal convolutions, then one
    bidirectional GRU over the real frames. Lighter than the Transformer for long sequences.

    features: float [n, frames, dim] of any ``dim``; mask: bool [n, frames], True on a prefix
    of each row (frames left-aligned, as the pipeline pads them) -> [n, frames, width].
    Padded frames are zeroed before every convolution (so they look like the convolution's own
    zero padding) and lie beyond the GRU's sequence lengths, so they change no real frame's state.
    """

    width: int
    num_layers: int
    kernel_size: int = 3
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0

    @nn.compact
    def __call__(self, features, mask, deterministic=True):
        if self.width % 2:
            raise ConfigError(f"config.model.width={self.width} must be even for the conv_rnn "
                              "feature encoder (two GRU directions of width/2)")
        keep = mask[..., None].astype(self.dtype)
        x = layers.layer_norm(self.dtype, "input_norm")(features.astype(self.dtype))
        x = layers.dense(self.width, ("features", "embed"), self.dtype, name="input_projection")(x)
        for i in range(self.num_layers):
            y = nn.Conv(self.width, (self.kernel_size,), padding="SAME", dtype=self.dtype, name=f"conv_{i}",
                        kernel_init=nn.with_logical_partitioning(layers.default_kernel,
                                                                 ("conv_window", "embed", "mlp")),
                        bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)))(x * keep)
            x = layers.layer_norm(self.dtype, f"conv_norm_{i}")(x + layers.Dropout(self.dropout)(
                nn.gelu(y), deterministic=deterministic))

        def gru(name):
            # Input kernels [embed, mlp], recurrent kernels [recurrent, mlp]: distinct names, so
            # sharding "mlp" over a mesh axis never names that axis twice in one kernel.
            cell = nn.GRUCell(
                self.width // 2, dtype=self.dtype,
                kernel_init=nn.with_logical_partitioning(nn.initializers.lecun_normal(), ("embed", "mlp")),
                recurrent_kernel_init=nn.with_logical_partitioning(nn.initializers.orthogonal(),
                                                                   ("recurrent", "mlp")),
                bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp",)), name=name)
            return nn.RNN(cell)  # the cell, created here, keeps its parameters under this encoder

        lengths = jnp.sum(mask, axis=-1).astype(jnp.int32)
        x = nn.Bidirectional(gru("forward_gru"), gru("backward_gru"))(x * keep, seq_lengths=lengths)
        x = layers.Dropout(self.dropout)(x, deterministic=deterministic)
        return layers.layer_norm(self.dtype, "final_norm")(x)


def _transformer(width, num_layers, num_heads, mlp_dim, dtype, dropout, name, attention="einsum"):
    return SequenceEncoder(width, num_layers, num_heads, mlp_dim, dtype, dropout, attention, name=name)


def _conv_rnn(width, num_layers, num_heads, mlp_dim, dtype, dropout, name, attention="einsum"):
    del num_heads, mlp_dim, attention  # neither attention nor a feed-forward block
    return ConvRecurrentEncoder(width, num_layers, dtype=dtype, dropout=dropout, name=name)


# config.model.feature_encoder -> builder of the audio / visual encoder.
FEATURE_ENCODERS = {"transformer": _transformer, "conv_rnn": _conv_rnn}
