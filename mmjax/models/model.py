"""Top-level wiring: encoders -> dialogue context -> fusion -> task sharing -> heads."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmjax.data import packing
from mmjax.errors import ConfigError
from mmjax.models import context, encoders, fusion, layers, pretrained, towers
from mmjax.tasks import Task, resolve_tasks

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
TEXT_ENCODER = "text_encoder"  # the params subtree a pretrained checkpoint fills (and may freeze)
# The learned per-task log-variances in the params (loss_balancing="uncertainty"; mmjax.losses reads them).
TASK_LOG_VARIANCE = "task_log_variance"


def _lookup(registry: dict, key: str, value: str):
    try:
        return registry[value]
    except KeyError:
        raise ConfigError(f"config.{key}={value!r} is not one of {sorted(registry)}") from None


class AffectModel(nn.Module):
    """Multi-task multimodal affect model over padded dialogue windows.

    batch (see ``mmjax.data.pipeline``): tokens int32 [B, T, L], token_mask [B, T, L], audio
    [B, T, Fa, Da], audio_mask [B, T, Fa], visual [B, T, Fv, Dv], visual_mask [B, T, Fv],
    speakers int32 [B, T], turn_mask [B, T]. Returns outputs: task -> float32 [B, T, Task.outputs]
    (class or label logits; regression: the value scaled to [-1, 1] over the task's range).

    The text encoder is trained from scratch (a Transformer, or with ``ngram`` a bag of hashed
    n-gram embeddings), or with ``pretrained_text`` a BERT-family encoder
    (weights loaded into the train state, see ``pretrained_params``) whose states are projected
    to ``width``; ``freeze_text`` runs it without dropout or gradient. With ``cached_text`` the
    batch carries such a frozen encoder's states, text_states float16 [B, T, L, hidden], and only
    the projection runs.
    """

    tasks: tuple[Task, ...]
    modalities: tuple[str, ...]
    vocab_size: int
    width: int
    mlp_dim: int
    num_heads: int
    text_layers: int
    feature_layers: int
    feature_encoder: str
    context_turns: int
    fusion: str
    sharing: str
    tower_hidden: int
    tower_layers: int
    cross_stitch: bool
    tower_attention: bool
    dropout: float
    dtype: layers.Dtype = jnp.float32
    attention: str = "einsum"  # layers.Attention.kernel of every attention
    pretrained_text: encoders.BertConfig | None = None
    freeze_text: bool = False
    cached_text: bool = False
    task_uncertainty: bool = False  # declare one learned log-variance per task (losses.py)
    context_interaction: str = "attention"  # context.INTERACTIONS
    ngram: dict | None = None  # text_encoder="ngram": NgramEncoder's orders, buckets, ngram_dropout, ngram_init_scale

    @nn.compact
    def __call__(self, batch, train: bool = False):
        deterministic = not train
        B, T = batch["turn_mask"].shape
        flat = lambda x: x.reshape((B * T,) + x.shape[2:])  # noqa: E731  [B, T, ...] -> [B*T, ...]
        common = dict(width=self.width, num_heads=self.num_heads, mlp_dim=self.mlp_dim,
                      dtype=self.dtype, dropout=self.dropout, attention=self.attention)
        sequences, masks = {}, {}
        for m in self.modalities:
            if m == "text":
                masks[m], states = flat(batch["token_mask"]), self._text_states(batch, deterministic)
            else:
                build = _lookup(encoders.FEATURE_ENCODERS, "model.feature_encoder", self.feature_encoder)
                encoder = build(num_layers=self.feature_layers, name=f"{m}_encoder", **common)
                masks[m] = flat(batch[f"{m}_mask"])
                states = encoder(flat(batch[m]), masks[m], deterministic=deterministic)
            sequences[m] = nn.with_logical_constraint(states, ("batch", "length", "embed"))

        turn_mask = batch["turn_mask"]
        present, utterances = {}, {}
        for m in self.modalities:
            present[m] = jnp.any(masks[m], -1) & flat(turn_mask)
            pooled = layers.masked_mean(sequences[m], masks[m], axis=1).reshape(B, T, self.width)
            if self.context_turns > 0 and self.context_interaction == "previous_turns":
                pooled = context.PreviousTurns(self.context_turns, self.dtype, self.dropout, name=f"{m}_context")(
                    pooled, batch["speakers"], present[m].reshape(B, T), deterministic)
            elif self.context_turns > 0:
                pooled = context.ContextInteraction(
                    self.context_turns, self.num_heads, self.mlp_dim, self.dtype, self.dropout, self.attention,
                    name=f"{m}_context")(pooled, batch["speakers"], present[m].reshape(B, T), deterministic)
            utterances[m] = flat(pooled)

        fusion_cls = _lookup(fusion.FUSIONS, "model.fusion", self.fusion)
        joint = fusion_cls(self.modalities, self.num_heads, self.dtype, self.dropout, self.attention, name="fusion")(
            sequences, masks, utterances, present, deterministic=deterministic)

        main_tasks = tuple(t.name for t in self.tasks if not t.relates)
        sharing_cls = _lookup(towers.SHARING, "model.sharing", self.sharing)
        kwargs = ({"cross_stitch": self.cross_stitch, "tower_attention": self.tower_attention,
                   "num_heads": self.num_heads, "attention": self.attention} if self.sharing == "soft" else {})
        representations = sharing_cls(main_tasks, self.tower_hidden, self.tower_layers, dtype=self.dtype,
                                      dropout=self.dropout, name="sharing", **kwargs)(joint, deterministic)
        logits = towers.TaskHeads(self.tasks, self.tower_hidden, self.dtype, name="heads")(representations)
        if self.task_uncertainty:  # read by the loss (uncertainty weighting), not by the forward pass
            self.param(TASK_LOG_VARIANCE, nn.with_logical_partitioning(nn.initializers.zeros, ("tasks",)),
                       (len(self.tasks),))
        return {task: value.reshape(B, T, -1) for task, value in logits.items()}

    def _text_states(self, batch, deterministic: bool) -> jax.Array:
        """[B*T, L, width] token states of every utterance: encoded from ``tokens`` [B, T, L], or
        from the batch's packed rows (``mmjax.data.packing``: ``packed_tokens``, ``packed_segments``
        and ``packed_positions`` [G, P, L]) and put back in place by ``packed_index`` [B, T, L]."""
        B, T, L = batch["token_mask"].shape
        if self.cached_text:  # a frozen encoder's states, computed once (models/text_states.py)
            states = batch["text_states"].reshape(B * T, L, -1).astype(self.dtype)
        else:
            if self.ngram is not None:
                encoder = encoders.NgramEncoder(self.vocab_size, self.width, **self.ngram, dtype=self.dtype,
                                                dropout=self.dropout, name=TEXT_ENCODER)
            elif self.pretrained_text is None:
                encoder = encoders.TextEncoder(self.vocab_size, self.width, self.text_layers, self.num_heads,
                                               self.mlp_dim, dtype=self.dtype, dropout=self.dropout,
                                               attention=self.attention, name=TEXT_ENCODER)
            else:
                encoder = encoders.BertEncoder(self.pretrained_text, self.dtype, self.dropout, self.attention,
                                               name=TEXT_ENCODER)
            frozen = self.pretrained_text is not None and self.freeze_text
            run = lambda tokens, mask, positions=None: encoder(  # noqa: E731  [n, L] -> [n, L, hidden]
                tokens, mask, deterministic=deterministic or frozen, positions=positions)
            if packing.PACKED_TOKENS in batch:
                G = batch[packing.PACKED_TOKENS].shape[0]
                rows = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731  [G, P, L] -> [G*P, L]
                packed = run(*(rows(batch[k]) for k in packing.PACKED_KEYS))
                packed = packed.reshape(G, -1, packed.shape[-1])  # [G, P*L, hidden]
                # Each group's windows are one block of the (micro-)batch: a gather within each group and device.
                index = batch[packing.PACKED_INDEX].reshape(G, -1, 1)  # [G, B/G*T*L, 1]
                states = jnp.take_along_axis(packed, index, axis=1).reshape(B * T, L, -1)
            else:
                states = run(batch["tokens"].reshape(B * T, L), batch["token_mask"].reshape(B * T, L))
            if frozen:  # no backward pass through the encoder at all
                states = jax.lax.stop_gradient(states)
        if self.cached_text or self.pretrained_text is not None:
            states = layers.dense(self.width, ("features", "embed"), self.dtype, name="text_projection")(states)
        return states


def build_model(config, manifest) -> AffectModel:
    """The model described by ``config.model`` for a corpus with ``manifest``."""
    m = config.model
    modalities = tuple(m.modalities)
    unknown = [x for x in modalities if x not in ("text", "audio", "visual")]
    if unknown or not modalities:
        raise ConfigError(f"config.model.modalities={modalities} must be a non-empty subset of "
                         "('text', 'audio', 'visual')")
    for x in modalities:
        if x != "text" and manifest["features"][f"{x}_dim"] == 0:
            raise ConfigError(f"config.model.modalities includes {x!r} but the corpus at "
                             f"{config.data.dir!r} has no {x} features")
    text_config = None
    if m.text_encoder != "scratch" and "text" not in modalities:
        raise ConfigError(f"config.model.text_encoder={m.text_encoder!r} but config.model.modalities={modalities} "
                          "has no text")
    if m.text_encoder == "pretrained":
        text_config = check_text_vocabulary(config, manifest["text"])
    return AffectModel(
        tasks=resolve_tasks(config.tasks, manifest), modalities=modalities,
        vocab_size=layers.padded_vocab_size(manifest["text"]["vocab_size"]), width=m.width, mlp_dim=m.mlp_dim,
        num_heads=m.num_heads, text_layers=m.text_layers, feature_layers=m.feature_layers,
        feature_encoder=m.feature_encoder, context_turns=config.model.context_turns,
        context_interaction=_lookup({k: k for k in context.INTERACTIONS}, "model.context_interaction",
                                    m.get("context_interaction", "attention")),  # runs recorded before the key
        fusion=m.fusion,
        sharing=m.sharing, tower_hidden=m.tower_hidden, tower_layers=m.tower_layers,
        cross_stitch=m.cross_stitch, tower_attention=m.tower_attention,
        dropout=m.dropout, dtype=_lookup(DTYPES, "model.dtype", m.dtype),
        attention=_lookup({k: k for k in layers.ATTENTION_KERNELS}, "model.attention",
                          m.get("attention", "einsum")),  # runs recorded before the key: einsum
        pretrained_text=text_config,
        freeze_text=m.pretrained.mode == "frozen", cached_text=m.text_encoder == "cached",
        task_uncertainty=config.loss_balancing == "uncertainty",
        ngram=(dict(orders=m.ngram.orders, buckets=m.ngram.buckets, ngram_dropout=m.ngram.dropout,
                    ngram_init_scale=m.ngram.get("init_scale", 0.1))  # runs recorded before the key: 0.1
               if m.text_encoder == "ngram" else None))


def check_text_vocabulary(config, text_section) -> encoders.BertConfig:
    """The architecture of the checkpoint a pretrained or cached text encoder reads; raises
    ConfigError unless the records' token ids (``text_section``, a manifest's "text") are of
    its vocabulary."""
    text_config = pretrained.read_config(pretrained.checkpoint_dir(config.model.pretrained.path))
    pretrained.check_vocabulary(
        text_section, text_config, f"config.model.text_encoder={config.model.text_encoder!r}",
        f"the records in config.data.dir={config.data.dir!r} do not fit: for the synthetic corpus set "
        "config.data.tokenizer='minilm' (or the checkpoint directory), for others prepare the corpus "
        "with the checkpoint's tokenizer")
    return text_config


def pretrained_params(config) -> dict:
    """Top-level params subtree name -> numpy weights that replace their random initialisation in
    a fresh run: the text encoder's checkpoint when ``config.model.text_encoder='pretrained'``."""
    if config.model.text_encoder != "pretrained":
        return {}
    _, params = pretrained.load(pretrained.checkpoint_dir(config.model.pretrained.path))
    return {TEXT_ENCODER: params}
