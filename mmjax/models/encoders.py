"""Modality encoders: token text and pre-extracted feature sequences (audio, visual)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from mmjax.models import layers


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
    """float32 [length, width] fixed sinusoidal position encodings."""
    positions = np.arange(length)[:, None]
    frequencies = np.exp(-np.log(10000.0) * np.arange(0, width, 2) / width)
    table = np.zeros((length, width), np.float32)
    table[:, 0::2] = np.sin(positions * frequencies)
    table[:, 1::2] = np.cos(positions * frequencies)[:, :width // 2]
    return table


class TextEncoder(nn.Module):
    """Token ids -> contextual token states.

    tokens: int32 [n, tokens]; mask: bool [n, tokens] -> [n, tokens, width]. Learned positions
    up to ``max_positions``, so the parameters do not depend on the padded length.
    """

    vocab_size: int
    width: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    max_positions: int = 512
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0

    @nn.compact
    def __call__(self, tokens, mask, deterministic=True):
        if tokens.shape[-1] > self.max_positions:
            raise ValueError(f"{tokens.shape[-1]} tokens per utterance exceed max_positions={self.max_positions}")
        embed = nn.Embed(self.vocab_size, self.width, dtype=self.dtype, name="token_embedding",
                         embedding_init=nn.with_logical_partitioning(
                             nn.initializers.normal(0.02), ("vocab", "embed")))
        positions = self.param("position_embedding", nn.with_logical_partitioning(
            nn.initializers.normal(0.02), ("positions", "embed")), (self.max_positions, self.width))
        x = embed(tokens) + positions[:tokens.shape[-1]].astype(self.dtype)
        x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
        for i in range(self.num_layers):
            x = layers.TransformerLayer(self.num_heads, self.mlp_dim, self.dtype, self.dropout,
                                        name=f"layer_{i}")(x, mask, deterministic)
        return layers.layer_norm(self.dtype, "final_norm")(x)


class SequenceEncoder(nn.Module):
    """Feature frames -> contextual frame states (Transformer with sinusoidal positions).

    features: float [n, frames, dim]; mask: bool [n, frames] -> [n, frames, width].
    """

    width: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0

    @nn.compact
    def __call__(self, features, mask, deterministic=True):
        x = layers.layer_norm(self.dtype, "input_norm")(features.astype(self.dtype))
        x = layers.dense(self.width, ("features", "embed"), self.dtype, name="input_projection")(x)
        x = x + sinusoidal_positions(features.shape[-2], self.width).astype(self.dtype)
        x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
        for i in range(self.num_layers):
            x = layers.TransformerLayer(self.num_heads, self.mlp_dim, self.dtype, self.dropout,
                                        name=f"layer_{i}")(x, mask, deterministic)
        return layers.layer_norm(self.dtype, "final_norm")(x)
