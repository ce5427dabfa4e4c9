"""Fusion of per-modality utterance representations into one joint vector per utterance.

Inputs, for each modality m of the model (``n`` utterances, ``f_m`` frames or tokens):
``sequences[m]`` [n, f_m, width] encoder states, ``sequence_masks[m]`` bool [n, f_m],
``utterances[m]`` [n, width] context-aware utterance vectors, ``present[m]`` bool [n].
Output: [n, width]. An absent modality contributes exactly nothing: its slot is zeroed before
the output projection and it offers no keys to the others' attention.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from mmjax.models import layers


def _joint(utterances, present, modalities, dtype, width):
    """Concatenates present modalities' vectors (absent ones zeroed) and projects to ``width``."""
    parts = [utterances[m] * present[m][:, None].astype(dtype) for m in modalities]
    x = layers.dense(width, ("mlp", "embed"), dtype, name="joint_projection")(jnp.concatenate(parts, -1))
    return layers.layer_norm(dtype, "joint_norm")(nn.gelu(x))


class ConcatFusion(nn.Module):
    """Late fusion baseline: each modality is encoded (and put in context) on its own; only the
    finished utterance vectors meet, concatenated and projected. No cross-modal attention."""

    modalities: tuple[str, ...]
    num_heads: int = 1
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0
    attention: str = "einsum"  # layers.Attention.kernel

    @nn.compact
    def __call__(self, sequences, sequence_masks, utterances, present, deterministic=True):
        width = utterances[self.modalities[0]].shape[-1]
        return _joint(utterances, present, self.modalities, self.dtype, width)


class CrossModalFusion(nn.Module):
    """Multi-head cross-modal attention: each modality's utterance vector queries every other
    modality's frame/token states (as in cross-modal transformers), then all are joined."""

    modalities: tuple[str, ...]
    num_heads: int
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0
    attention: str = "einsum"  # layers.Attention.kernel

    @nn.compact
    def __call__(self, sequences, sequence_masks, utterances, present, deterministic=True):
        width = utterances[self.modalities[0]].shape[-1]
        fused = {}
        for target in self.modalities:
            query = layers.layer_norm(self.dtype, f"{target}_query_norm")(utterances[target])[:, None, :]
            out = utterances[target]
            for source in self.modalities:
                if source == target:
                    continue
                keys = layers.layer_norm(self.dtype, f"{source}_to_{target}_key_norm")(sequences[source])
                attended = layers.Attention(self.num_heads, self.dtype, self.dropout, self.attention,
                                            name=f"{source}_to_{target}")(
                    query, keys, sequence_masks[source][:, None, :], deterministic=deterministic)
                out = out + layers.Dropout(self.dropout)(attended[:, 0], deterministic=deterministic)
            fused[target] = out
        return _joint(fused, present, self.modalities, self.dtype, width)


class GatedFusion(nn.Module):
    """Gated attention fusion baseline. Each modality is summarised by attention pooling over its
    states (a learned query) added to its context-aware utterance vector; gates conditioned on
    all present modalities' summaries weight the modalities per feature (a softmax over the
    present modalities, so an absent one gets weight 0) and the gated sum is the output."""

    modalities: tuple[str, ...]
    num_heads: int
    dtype: layers.Dtype = jnp.float32
    dropout: float = 0.0
    attention: str = "einsum"  # layers.Attention.kernel

    @nn.compact
    def __call__(self, sequences, sequence_masks, utterances, present, deterministic=True):
        width = utterances[self.modalities[0]].shape[-1]
        summaries = []
        for m in self.modalities:
            query = self.param(f"{m}_pooling_query", nn.with_logical_partitioning(
                nn.initializers.normal(0.02), ("embed",)), (width,)).astype(self.dtype)
            keys = layers.layer_norm(self.dtype, f"{m}_key_norm")(sequences[m])
            pooled = layers.Attention(self.num_heads, self.dtype, self.dropout, self.attention, name=f"{m}_pooling")(
                jnp.broadcast_to(query, (keys.shape[0], 1, width)), keys, sequence_masks[m][:, None, :],
                deterministic=deterministic)[:, 0]
            summary = layers.layer_norm(self.dtype, f"{m}_summary_norm")(utterances[m] + pooled)
            summaries.append(summary * present[m][:, None].astype(self.dtype))
        summaries = jnp.stack(summaries, 1)  # [n, modalities, width], absent modalities zero
        present_mask = jnp.stack([present[m] for m in self.modalities], 1)  # [n, modalities]
        gate_scores = layers.dense(len(self.modalities) * width, ("mlp", "embed"), self.dtype, name="gates")(
            summaries.reshape(summaries.shape[0], -1)).reshape(summaries.shape)
        # Softmax over the modalities axis (moved last), restricted to the present ones.
        gates = layers.masked_softmax(jnp.swapaxes(gate_scores, 1, 2), present_mask[:, None, :])
        values = jnp.tanh(layers.dense(width, ("embed", "mlp"), self.dtype, name="values")(summaries))
        fused = jnp.einsum("ndm,nmd->nd", gates.astype(self.dtype), values)
        out = layers.dense(width, ("mlp", "embed"), self.dtype, name="output_projection")(fused)
        return layers.layer_norm(self.dtype, "output_norm")(nn.gelu(out))


FUSIONS = {"cross_attention": CrossModalFusion, "concat": ConcatFusion, "gated": GatedFusion}
