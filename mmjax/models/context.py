"""Dialogue-context interaction: how each utterance's vector takes in the turns before it.
``ContextInteraction``: speaker-aware attention over the previous turns; ``PreviousTurns``: a
learned linear map of each previous turn's vector, added to the utterance's own."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models import layers


class ContextInteraction(nn.Module):
    """Each utterance attends to the ``context_turns`` utterances before it in its dialogue.

    Attention scores get a learned per-head bias for the speaker relation (same speaker as the
    current turn, or another one) and for the distance in turns, so "what my interlocutor just
    said" and "what I said three turns ago" are distinguished.

    x: [batch, turns, width]; speakers: int32 [batch, turns]; turn_mask: bool [batch, turns]
    -> [batch, turns, width]. An utterance with no previous turn passes through the MLP only.
    """

    context_turns: int
    num_heads: int
    mlp_dim: int
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0
    attention: str = "einsum"  # layers.Attention.kernel

    @nn.compact
    def __call__(self, x, speakers, turn_mask, deterministic=True):
        turns = x.shape[1]
        current, previous = jnp.arange(turns)[:, None], jnp.arange(turns)[None, :]
        distance = current - previous  # [turns, turns]
        in_window = (distance >= 1) & (distance <= self.context_turns)
        mask = in_window[None] & turn_mask[:, :, None] & turn_mask[:, None, :]
        same_speaker = (speakers[:, :, None] == speakers[:, None, :]).astype(jnp.int32)

        init = nn.with_logical_partitioning(nn.initializers.zeros, (None, "heads"))
        relation_bias = self.param("speaker_relation_bias", init, (2, self.num_heads))
        distance_bias = self.param("distance_bias", init, (self.context_turns + 1, self.num_heads))
        bias = relation_bias[same_speaker] + distance_bias[jnp.clip(distance, 0, self.context_turns)][None]
        bias = jnp.moveaxis(bias, -1, 1).astype(self.dtype)  # [batch, heads, turns, turns]

        y = layers.layer_norm(self.dtype, "pre_attention_norm")(x)
        h = layers.Attention(self.num_heads, self.dtype, self.dropout, self.attention, name="attention")(
            y, y, mask, bias, deterministic=deterministic)
        x = x + layers.Dropout(self.dropout)(h, deterministic=deterministic)
        h = layers.MLP(self.mlp_dim, self.dtype, self.dropout, name="mlp")(
            layers.layer_norm(self.dtype, "pre_mlp_norm")(x), deterministic=deterministic)
        return x + layers.Dropout(self.dropout)(h, deterministic=deterministic)


class PreviousTurns(nn.Module):
    """Each utterance's vector plus a learned linear map of the vectors of its ``context_turns``
    previous turns, one slot per distance (zero where the dialogue has no such turn), split by
    whether the earlier turn's speaker is the current one's. It is what a linear model does with
    the previous turns' features beside the utterance's own; the map starts at zero, so training
    starts from the model without context. Where attention over the previous turns overfits a
    small corpus, this has ``2 * context_turns * width * width`` weights and nothing else.

    x: [batch, turns, width]; speakers: int32 [batch, turns]; turn_mask: bool [batch, turns]
    -> [batch, turns, width].
    """

    context_turns: int
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0

    @nn.compact
    def __call__(self, x, speakers, turn_mask, deterministic=True):
        turns = x.shape[1]
        y = layers.layer_norm(self.dtype, "context_norm")(x) * turn_mask[..., None].astype(self.dtype)
        shift = lambda a, j: jnp.pad(a, ((0, 0), (j, 0)) + ((0, 0),) * (a.ndim - 2))[:, :turns]  # noqa: E731  turn t holds t-j
        slots = []
        for j in range(1, self.context_turns + 1):
            previous, same = shift(y, j), (shift(speakers, j) == speakers)[..., None].astype(self.dtype)
            slots += [previous * same, previous * (1 - same)]
        context = layers.Dropout(self.dropout)(jnp.concatenate(slots, -1), deterministic=deterministic)
        projection = nn.Dense(x.shape[-1], dtype=self.dtype, name="projection",
                              kernel_init=nn.with_logical_partitioning(nn.initializers.zeros, ("mlp", "embed")),
                              bias_init=nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)))
        return x + projection(context)


INTERACTIONS = ("attention", "previous_turns")
