"""A PyTorch twin of mmjax's model and train step, and a CPU benchmark of JAX against PyTorch
eager and ``torch.compile``, interleaved in one run::

    python benchmarks/torch_twin.py --config=configs/soft_share.py [--rounds=5 --steps=20 --json=out.json]

The twin (``TorchTwin``) has the JAX model's layers and its parameter names and layouts (a
kernel is [in, out] here too), so ``load_jax_params`` copies a flax params tree into it by name,
and the strict ``load_state_dict`` proves the two trees the same. Before anything is timed the
run checks that, with the same params and batch, the twin's logits and loss are the JAX model's
(float32, to ~1e-5): the timings compare one computation, written twice.

The train step (``TorchTrainStep``) is ``mmjax.train_step``'s: per task the class-weighted
cross-entropy over the batch's labelled utterances, weighted and summed, plus soft sharing's tie
penalty; backward; global-norm clipping; AdamW with ``mmjax.optim``'s schedule, decay mask and
hyper-parameters (and the pretrained encoder's learning-rate scale). The eval step
(``TorchEvalStep``) is the forward pass and each task's loss sum, count, predictions and
confusion matrix, as ``make_eval_step`` computes them.

Timing: JAX as it runs (XLA's CPU thread pool over every core). PyTorch with
``torch.set_num_threads(t)`` for each ``--threads`` value; for each ``t`` the compiled steps are
compiled afresh (Inductor's C++ kernels are specialised to the thread count, and Dynamo does not
guard on it), then rounds of ``--steps`` steps run interleaved JAX / eager / compiled, first for
the train step, then for the eval step. A side's step time is the median over rounds of each
round's median, and each side's best thread count is reported. Compile seconds (the first call,
cold: Inductor's on-disk caches are off, as XLA's is by default) are reported apart, and the
compiled eval step is checked to compute what eager does. ``torch.compile`` compiles the model
and loss (forward, and backward through AOTAutograd); both torch sides update with the fused CPU
AdamW (``TorchTrainStep`` says why). Time on an otherwise idle machine: with more runnable
threads than cores, each of torch's OpenMP parallel regions waits for a descheduled thread (on a
busy 2-core machine, 2 threads made the steps 20x slower than 1).

PyTorch is an optional peer, never a dependency of mmjax (``pip install 'mmjax[torch]'``; a
CPU-only wheel is enough).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ModuleNotFoundError:
    if __name__ == "__main__":
        print("benchmarks/torch_twin.py: error: PyTorch is not installed (an optional peer of this benchmark, never a "
              "dependency of mmjax): pip install torch (a CPU-only wheel is enough)", file=sys.stderr)
        sys.exit(2)
    raise

import jax
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from mmjax import cli, inputs, losses, measurements, optim, prepared_records, setup as setup_lib, sharding, train_step
from mmjax.models import encoders, model as model_lib, towers
from mmjax.tasks import CLASSIFICATION, UNLABELLED

PROGRAM = "benchmarks/torch_twin.py"
BATCHES = 8  # distinct batches each side cycles through, as mmjax.benchmark
_MIN = torch.finfo(torch.float32).min  # the score of a masked key, as layers.masked_softmax (no -inf, no NaN)


# --- Layers: mmjax.models.layers, with flax's parameter names and layouts. -------------------------------


def _parameter(*shape: int) -> nn.Parameter:
    """A parameter of ``shape``; its values come from the JAX model (``load_jax_params``)."""
    return nn.Parameter(torch.zeros(shape))


def gelu(x):
    """flax's ``nn.gelu``: the tanh approximation."""
    return F.gelu(x, approximate="tanh")


class Dense(nn.Module):
    """flax ``nn.Dense``: kernel [in, out], bias [out]. x: [..., in] -> [..., out]."""

    def __init__(self, features_in: int, features_out: int):
        super().__init__()
        self.kernel, self.bias = _parameter(features_in, features_out), _parameter(features_out)

    def forward(self, x):
        return F.linear(x, self.kernel.T, self.bias)


class LayerNorm(nn.Module):
    """``layers.layer_norm``: scale and bias [features]. x: [..., features]."""

    def __init__(self, features: int, epsilon: float = 1e-6):
        super().__init__()
        self.scale, self.bias, self.epsilon = _parameter(features), _parameter(features), epsilon

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.scale, self.bias, self.epsilon)


class Embed(nn.Module):
    """flax ``nn.Embed``: embedding [rows, width]. ids: int [...] -> [..., width]."""

    def __init__(self, rows: int, width: int):
        super().__init__()
        self.embedding = _parameter(rows, width)

    def forward(self, ids):
        return F.embedding(ids, self.embedding)


class Attention(nn.Module):
    """``layers.Attention``: kernels [width, heads, head_dim], out_kernel [heads, head_dim, width].

    query: [..., q, width]; key_value: [..., k, width]; mask: bool [..., q, k]; bias: optional
    additive scores [..., heads, q, k] -> [..., q, width]. A fully masked query attends to nothing
    (output: the output bias alone), as ``layers.masked_softmax`` has it. The scores run through
    ``F.scaled_dot_product_attention``, PyTorch's own fast path (same scale, 1/sqrt(head_dim));
    a single query, as ``layers.Attention``, without projecting the keys and values.
    """

    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        if width % num_heads:
            raise ValueError(f"model width {width} is not divisible by num_heads={num_heads}")
        head_dim = width // num_heads
        for name in ("query", "key", "value"):
            setattr(self, f"{name}_kernel", _parameter(width, num_heads, head_dim))
            setattr(self, f"{name}_bias", _parameter(num_heads, head_dim))
        self.out_kernel, self.out_bias = _parameter(num_heads, head_dim, width), _parameter(width)
        self.num_heads, self.dropout = num_heads, dropout

    def _project(self, name: str, x):
        """[..., n, width] -> [..., heads, n, head_dim]."""
        kernel, bias = getattr(self, f"{name}_kernel"), getattr(self, f"{name}_bias")
        return F.linear(x, kernel.flatten(1).T, bias.flatten()).unflatten(-1, (self.num_heads, -1)).transpose(-2, -3)

    def forward(self, query, key_value, mask, bias=None):
        mask = mask.unsqueeze(-3)  # [..., 1, q, k]: the same for every head
        q = self._project("query", query)  # [..., heads, q, head_dim]
        if query.shape[-2] == 1:
            out = self._single_query(q, key_value, mask, bias)
        else:
            scores_mask = mask if bias is None else bias.masked_fill(~mask, _MIN)
            out = F.scaled_dot_product_attention(
                q, self._project("key", key_value), self._project("value", key_value),
                attn_mask=scores_mask, dropout_p=self.dropout if self.training else 0.0)
        out = out * mask.any(-1, keepdim=True)  # [..., heads, q, head_dim]
        return F.linear(out.transpose(-2, -3).flatten(-2), self.out_kernel.flatten(0, 1).T, self.out_bias)


    def _single_query(self, q, key_value, mask, bias):
        """q [..., heads, 1, head_dim] -> [..., heads, 1, head_dim]: scores (W_k q) . x + q . b_k,
        output W_v (sum_j a_j x_j) + b_v sum_j a_j, as ``layers.Attention``."""
        query_keys = torch.einsum("...hqk,dhk->...hqd", q, self.key_kernel)  # [..., heads, 1, width]
        states = key_value.unsqueeze(-3)  # [..., 1, k, width]
        scores = (query_keys @ states.transpose(-1, -2)
                  + (q * self.key_bias.unsqueeze(-2)).sum(-1, keepdim=True)) / q.shape[-1] ** 0.5
        if bias is not None:
            scores = scores + bias
        weights = torch.softmax(scores.masked_fill(~mask, _MIN), -1)
        weights = F.dropout(weights, self.dropout, self.training)
        return (torch.einsum("...hqd,dhk->...hqk", weights @ states, self.value_kernel)
                + weights.sum(-1, keepdim=True) * self.value_bias.unsqueeze(-2))


class MLP(nn.Module):
    """``layers.MLP``: wi, wo. x: [..., width] -> [..., width]."""

    def __init__(self, width: int, hidden: int, dropout: float):
        super().__init__()
        self.wi, self.wo, self.dropout = Dense(width, hidden), Dense(hidden, width), nn.Dropout(dropout)

    def forward(self, x):
        return self.wo(self.dropout(gelu(self.wi(x))))


class TransformerLayer(nn.Module):
    """``layers.TransformerLayer`` (pre-norm). x: [..., n, width]; mask: bool [..., n]."""

    def __init__(self, width: int, num_heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.pre_attention_norm, self.attention = LayerNorm(width), Attention(width, num_heads, dropout)
        self.pre_mlp_norm, self.mlp = LayerNorm(width), MLP(width, mlp_dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask):
        y = self.pre_attention_norm(x)
        x = x + self.dropout(self.attention(y, y, mask[..., :, None] & mask[..., None, :]))
        return x + self.dropout(self.mlp(self.pre_mlp_norm(x)))


def _add_layers(module: nn.Module, count: int, build) -> None:
    """Submodules ``layer_0`` .. ``layer_{count-1}``, as flax names a stack."""
    module.num_layers = count
    for i in range(count):
        module.add_module(f"layer_{i}", build())


def _run_layers(module: nn.Module, x, mask):
    for i in range(module.num_layers):
        x = getattr(module, f"layer_{i}")(x, mask)
    return x


# --- Encoders, context, fusion, towers, heads: mmjax.models.* -------------------------------------------


class TextEncoder(nn.Module):
    """``encoders.TextEncoder``. tokens: int [n, L]; mask: bool [n, L] -> [n, L, width]."""

    def __init__(self, vocab_size: int, width: int, num_layers: int, num_heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.token_embedding = Embed(vocab_size, width)
        self.position_embedding = _parameter(encoders.TextEncoder.max_positions, width)
        _add_layers(self, num_layers, lambda: TransformerLayer(width, num_heads, mlp_dim, dropout))
        self.final_norm, self.dropout = LayerNorm(width), nn.Dropout(dropout)

    def forward(self, tokens, mask):
        x = self.dropout(self.token_embedding(tokens) + self.position_embedding[:tokens.shape[-1]])
        return self.final_norm(_run_layers(self, x, mask))


class SequenceEncoder(nn.Module):
    """``encoders.SequenceEncoder``. features: float [n, F, dim]; mask: bool [n, F] -> [n, F, width]."""

    def __init__(self, frames: int, features: int, width: int, num_layers: int, num_heads: int, mlp_dim: int,
                 dropout: float):
        super().__init__()
        self.input_norm, self.input_projection = LayerNorm(features), Dense(features, width)
        # A constant, not a parameter: outside the state dict, as flax keeps it outside the params.
        self.register_buffer("positions", torch.from_numpy(encoders.sinusoidal_positions(frames, width)),
                             persistent=False)
        _add_layers(self, num_layers, lambda: TransformerLayer(width, num_heads, mlp_dim, dropout))
        self.final_norm, self.dropout = LayerNorm(width), nn.Dropout(dropout)

    def forward(self, features, mask):
        x = self.input_projection(self.input_norm(features)) + self.positions[:features.shape[-2]]
        return self.final_norm(_run_layers(self, self.dropout(x), mask))


# Hugging Face ``hidden_act`` -> function, as encoders.BERT_ACTIVATIONS.
_BERT_ACTIVATIONS = {"gelu": functools.partial(F.gelu, approximate="none"), "gelu_new": gelu,
                     "gelu_pytorch_tanh": gelu, "relu": F.relu}


class BertLayer(nn.Module):
    """``encoders.BertLayer`` (post-norm). x: [n, L, hidden]; mask: bool [n, L]."""

    def __init__(self, c: encoders.BertConfig, dropout: float):
        super().__init__()
        if c.hidden_act not in _BERT_ACTIVATIONS:
            raise NotImplementedError(f"the PyTorch twin has no BERT activation {c.hidden_act!r} (the checkpoint's "
                                      "hidden_act, config.model.pretrained.path)")
        self.attention = Attention(c.hidden_size, c.num_attention_heads, dropout)
        self.attention_norm = LayerNorm(c.hidden_size, c.layer_norm_eps)
        self.intermediate, self.output = Dense(c.hidden_size, c.intermediate_size), Dense(c.intermediate_size,
                                                                                          c.hidden_size)
        self.output_norm = LayerNorm(c.hidden_size, c.layer_norm_eps)
        self.activation, self.dropout = _BERT_ACTIVATIONS[c.hidden_act], nn.Dropout(dropout)

    def forward(self, x, mask):
        x = self.attention_norm(x + self.dropout(self.attention(x, x, mask[..., :, None] & mask[..., None, :])))
        return self.output_norm(x + self.dropout(self.output(self.activation(self.intermediate(x)))))


class BertEncoder(nn.Module):
    """``encoders.BertEncoder`` (segment 0, no pooler). tokens: int [n, L]; mask: bool [n, L] -> [n, L, hidden]."""

    def __init__(self, c: encoders.BertConfig, dropout: float):
        super().__init__()
        self.word_embeddings = _parameter(c.vocab_rows, c.hidden_size)
        self.position_embeddings = _parameter(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = _parameter(c.type_vocab_size, c.hidden_size)
        self.embeddings_norm, self.dropout = LayerNorm(c.hidden_size, c.layer_norm_eps), nn.Dropout(dropout)
        _add_layers(self, c.num_hidden_layers, lambda: BertLayer(c, dropout))

    def forward(self, tokens, mask):
        x = (F.embedding(tokens, self.word_embeddings) + self.position_embeddings[:tokens.shape[-1]]
             + self.token_type_embeddings[0])
        return _run_layers(self, self.dropout(self.embeddings_norm(x)), mask)


class ContextInteraction(nn.Module):
    """``context.ContextInteraction``: attention over the ``context_turns`` previous turns, with
    learned per-head speaker-relation and distance biases. x: [B, T, width]; speakers: int [B, T];
    turn_mask: bool [B, T] -> [B, T, width]."""

    def __init__(self, width: int, context_turns: int, num_heads: int, mlp_dim: int, dropout: float):
        super().__init__()
        self.context_turns = context_turns
        self.speaker_relation_bias = _parameter(2, num_heads)
        self.distance_bias = _parameter(context_turns + 1, num_heads)
        self.pre_attention_norm, self.attention = LayerNorm(width), Attention(width, num_heads, dropout)
        self.pre_mlp_norm, self.mlp = LayerNorm(width), MLP(width, mlp_dim, dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, speakers, turn_mask):
        turn = torch.arange(x.shape[1], device=x.device)
        distance = turn[:, None] - turn[None, :]  # [T, T]
        in_window = (distance >= 1) & (distance <= self.context_turns)
        mask = in_window & turn_mask[:, :, None] & turn_mask[:, None, :]
        same_speaker = (speakers[:, :, None] == speakers[:, None, :]).long()
        bias = self.speaker_relation_bias[same_speaker] + self.distance_bias[distance.clamp(0, self.context_turns)]
        y = self.pre_attention_norm(x)
        x = x + self.dropout(self.attention(y, y, mask, bias.permute(0, 3, 1, 2)))  # bias [B, heads, T, T]
        return x + self.dropout(self.mlp(self.pre_mlp_norm(x)))


class CrossModalFusion(nn.Module):
    """``fusion.CrossModalFusion``: each modality's utterance vector attends to every other
    modality's states; the present modalities are joined. sequences[m]: [n, f_m, width];
    masks[m]: bool [n, f_m]; utterances[m]: [n, width]; present[m]: bool [n] -> [n, width]."""

    def __init__(self, modalities: tuple[str, ...], width: int, num_heads: int, dropout: float):
        super().__init__()
        self.modalities = modalities
        for target in modalities:
            self.add_module(f"{target}_query_norm", LayerNorm(width))
            for source in modalities:
                if source != target:
                    self.add_module(f"{source}_to_{target}_key_norm", LayerNorm(width))
                    self.add_module(f"{source}_to_{target}", Attention(width, num_heads, dropout))
        self.joint_projection, self.joint_norm = Dense(len(modalities) * width, width), LayerNorm(width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, sequences, masks, utterances, present):
        parts = []
        for target in self.modalities:
            query = getattr(self, f"{target}_query_norm")(utterances[target])[:, None, :]
            out = utterances[target]
            for source in self.modalities:
                if source != target:
                    keys = getattr(self, f"{source}_to_{target}_key_norm")(sequences[source])
                    attended = getattr(self, f"{source}_to_{target}")(query, keys, masks[source][:, None, :])
                    out = out + self.dropout(attended[:, 0])
            parts.append(out * present[target][:, None])  # an absent modality contributes nothing
        return self.joint_norm(gelu(self.joint_projection(torch.cat(parts, -1))))


class SoftShared(nn.Module):
    """``towers.SoftShared``: one residual tower per task, batched over the tasks axis, with
    cross-stitch mixing after each layer. x: [n, width] -> task -> [n, hidden]."""

    def __init__(self, task_names: tuple[str, ...], width: int, hidden: int, num_layers: int, cross_stitch: bool,
                 dropout: float):
        super().__init__()
        self.task_names, self.num_layers = task_names, num_layers
        self.cross_stitch = cross_stitch and len(task_names) > 1
        tasks = len(task_names)
        for i in range(num_layers):
            setattr(self, f"{towers.TOWER_KERNEL}_{i}", _parameter(tasks, width if i == 0 else hidden, hidden))
            setattr(self, f"tower_bias_{i}", _parameter(tasks, hidden))
            if self.cross_stitch:
                setattr(self, f"{towers.CROSS_STITCH}_{i}", _parameter(tasks, tasks))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        h = x[:, None, :].expand(-1, len(self.task_names), -1)  # [n, tasks, width]
        for i in range(self.num_layers):
            kernel, bias = getattr(self, f"{towers.TOWER_KERNEL}_{i}"), getattr(self, f"tower_bias_{i}")
            out = gelu(torch.einsum("nki,kio->nko", h, kernel) + bias)
            h = out + h if out.shape == h.shape else out
            h = self.dropout(F.layer_norm(h, h.shape[-1:], eps=1e-6))  # flax nn.LayerNorm() without scale, bias
            if self.cross_stitch:
                h = torch.einsum("kj,njo->nko", getattr(self, f"{towers.CROSS_STITCH}_{i}"), h)
        return {t: h[:, k] for k, t in enumerate(self.task_names)}

    def tie_penalty(self):
        """``towers.tie_penalty``: sum over layers of ||W_task - mean_task W||^2."""
        kernels = (getattr(self, f"{towers.TOWER_KERNEL}_{i}") for i in range(self.num_layers))
        return sum(torch.sum(torch.square(w - w.mean(0, keepdim=True))) for w in kernels)


class TaskHeads(nn.Module):
    """``towers.TaskHeads``. representations: task -> [n, hidden] -> task -> [n, Task.outputs]."""

    def __init__(self, tasks, hidden: int):
        super().__init__()
        self.tasks = tasks
        for task in tasks:
            if task.relates:
                self.add_module(f"{task.name}_joint", Dense(len(task.relates) * hidden, hidden))
            self.add_module(f"{task.name}_head", Dense(hidden, task.outputs))

    def forward(self, representations):
        logits = {}
        for task in self.tasks:
            if task.relates:
                x = gelu(getattr(self, f"{task.name}_joint")(torch.cat([representations[r] for r in task.relates], -1)))
            else:
                x = representations[task.name]
            logits[task.name] = getattr(self, f"{task.name}_head")(x)
        return logits


# --- The model. -----------------------------------------------------------------------------------------


def unsupported(config, tasks) -> list[str]:
    """The settings of ``config`` (with its resolved ``tasks``) that the twin does not implement."""
    m = config.model
    found = [f"config.model.{key}={value!r}" for key, value, supported in (
        ("text_encoder", m.text_encoder, ("scratch", "pretrained")),
        ("pretrained.mode", m.pretrained.mode if m.text_encoder == "pretrained" else "finetune", ("finetune",)),
        ("feature_encoder", m.feature_encoder if set(m.modalities) - {"text"} else "transformer", ("transformer",)),
        ("fusion", m.fusion, ("cross_attention",)),
        ("sharing", m.sharing, ("soft",)),
        ("tower_attention", m.tower_attention, (False,)),
        ("dtype", m.dtype, ("float32",))) if value not in supported]
    if config.loss_balancing != "static":
        found.append(f"config.loss_balancing={config.loss_balancing!r}")
    found += [f"config.tasks: {t.name!r} is a {t.kind} task" for t in tasks if t.kind != CLASSIFICATION]
    return found


class TorchTwin(nn.Module):
    """``model.AffectModel`` in PyTorch, built from the same config and manifest: the same layers,
    parameter names ("text_encoder.layer_0.attention.query_kernel" is flax's
    params["text_encoder"]["layer_0"]["attention"]["query_kernel"]) and shapes.

    batch: the pipeline's, as torch tensors (``to_torch``): tokens [B, T, L], token_mask,
    audio [B, T, Fa, Da], audio_mask, visual [B, T, Fv, Dv], visual_mask, speakers [B, T],
    turn_mask [B, T]. Returns task -> float32 [B, T, Task.outputs] logits. Parameters are zero
    until ``load_jax_params``. Raises NotImplementedError naming the config keys it does not
    implement (``unsupported``).
    """

    def __init__(self, config, manifest):
        super().__init__()
        jax_model = model_lib.build_model(config, manifest)  # the hyper-parameters, as the JAX model reads them
        missing = unsupported(config, jax_model.tasks)
        if missing:
            raise NotImplementedError("the PyTorch twin does not implement " + ", ".join(missing))
        shapes = inputs.shapes(config, manifest)
        width, heads, mlp_dim, dropout = jax_model.width, jax_model.num_heads, jax_model.mlp_dim, jax_model.dropout
        self.tasks, self.modalities, self.width = jax_model.tasks, jax_model.modalities, width
        self.context_turns, self.pretrained = jax_model.context_turns, jax_model.pretrained_text is not None
        for m in self.modalities:
            if m == "text" and self.pretrained:
                self.add_module(model_lib.TEXT_ENCODER, BertEncoder(jax_model.pretrained_text, dropout))
                self.text_projection = Dense(jax_model.pretrained_text.hidden_size, width)
            elif m == "text":
                self.add_module(model_lib.TEXT_ENCODER, TextEncoder(jax_model.vocab_size, width, jax_model.text_layers,
                                                                    heads, mlp_dim, dropout))
            else:
                self.add_module(f"{m}_encoder", SequenceEncoder(*shapes.frames(m), width, jax_model.feature_layers,
                                                                heads, mlp_dim, dropout))
            if self.context_turns > 0:
                self.add_module(f"{m}_context", ContextInteraction(width, self.context_turns, heads, mlp_dim, dropout))
        self.fusion = CrossModalFusion(self.modalities, width, heads, dropout)
        main_tasks = tuple(t.name for t in self.tasks if not t.relates)
        self.sharing = SoftShared(main_tasks, width, jax_model.tower_hidden, jax_model.tower_layers,
                                  jax_model.cross_stitch, dropout)
        self.heads = TaskHeads(self.tasks, jax_model.tower_hidden)

    def forward(self, batch):
        B, T = batch["turn_mask"].shape
        sequences, masks = {}, {}
        for m in self.modalities:
            if m == "text":
                masks[m] = batch["token_mask"].flatten(0, 1)
                states = getattr(self, model_lib.TEXT_ENCODER)(batch["tokens"].flatten(0, 1), masks[m])
                sequences[m] = self.text_projection(states) if self.pretrained else states
            else:
                masks[m] = batch[f"{m}_mask"].flatten(0, 1)
                sequences[m] = getattr(self, f"{m}_encoder")(batch[m].flatten(0, 1), masks[m])
        turn_mask = batch["turn_mask"].flatten(0, 1)
        present, utterances = {}, {}
        for m in self.modalities:
            present[m] = masks[m].any(-1) & turn_mask
            weights = masks[m][..., None].float()  # layers.masked_mean over the frames / tokens
            pooled = ((sequences[m] * weights).sum(1) / weights.sum(1).clamp(min=1)).view(B, T, self.width)
            if self.context_turns > 0:
                pooled = getattr(self, f"{m}_context")(pooled, batch["speakers"], present[m].view(B, T))
            utterances[m] = pooled.flatten(0, 1)
        logits = self.heads(self.sharing(self.fusion(sequences, masks, utterances, present)))
        return {task: value.view(B, T, -1) for task, value in logits.items()}


def load_jax_params(twin: TorchTwin, params) -> None:
    """Copies a flax params tree (unboxed, any arrays) into ``twin``. The strict load fails on
    any name or shape that differs: the trees are the same or nothing is copied."""
    state = {".".join(k.key for k in path): torch.from_numpy(np.array(leaf, np.float32))
             for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
    twin.load_state_dict(state, strict=True)


def parameter_count(twin: nn.Module) -> int:
    return sum(p.numel() for p in twin.parameters())


def to_torch(batch):
    """A pipeline batch (numpy) -> torch tensors. Integers become int64: indices and
    cross-entropy targets must be (a copy made once, before any step is timed)."""
    def convert(x):
        x = np.asarray(x)
        return torch.from_numpy(x.astype(np.int64) if np.issubdtype(x.dtype, np.integer) else x.copy())
    return jax.tree.map(convert, batch)


# --- Loss and steps: mmjax.losses, mmjax.optim, mmjax.train_step. ---------------------------------------


def _cross_entropy(logits, labels, weight=None):
    """``losses.masked_cross_entropy``: (summed cross-entropy over labelled positions, their count).
    logits: [B, T, classes]; labels: int64 [B, T], UNLABELLED (-1) where unlabelled."""
    total = F.cross_entropy(logits.flatten(0, -2), labels.flatten(), weight=weight, ignore_index=UNLABELLED,
                            reduction="sum")
    return total, (labels >= 0).sum()


class Objective:
    """The training objective of ``mmjax.train_step``: sum_t w_t loss_sum_t / count_t over the
    tasks (``losses.task_loss``; class weights of ``losses.class_weights``), plus
    ``config.model.tie_weight`` times the towers' tie penalty (``losses.regulariser``)."""

    def __init__(self, config, manifest):
        self.weights = losses.task_weights({}, config)  # static balancing (unsupported() refuses the rest)
        self.tie_weight = config.model.tie_weight
        self.class_weights = {t: torch.from_numpy(w) for t, w in (losses.class_weights(config, manifest) or {}).items()}

    def __call__(self, twin: TorchTwin, logits, labels):
        """-> (loss, task -> (loss_sum, count))."""
        per_task = {t: _cross_entropy(logits[t], labels[t], self.class_weights.get(t)) for t in logits}
        loss = sum(self.weights[t] * total / count.clamp(min=1) for t, (total, count) in per_task.items())
        return loss + self.tie_weight * twin.sharing.tie_penalty(), per_task


def _param_groups(twin: TorchTwin, config) -> list[dict]:
    """AdamW parameter groups: weight decay where ``mmjax.optim``'s mask has it, and the
    pretrained text encoder's learning-rate scale (``optim.param_labels``)."""
    labels = optim.param_labels(dict(twin.named_children()))
    scale = {optim.TRAINABLE: 1.0, optim.PRETRAINED: config.model.pretrained.learning_rate_scale}
    groups: dict[tuple, list] = {}
    for name, p in twin.named_parameters():
        path = tuple(jax.tree_util.DictKey(k) for k in name.split("."))  # the flax path the name spells
        groups.setdefault((scale[labels[path[0].key]], optim._decays(path, p)), []).append(p)
    return [{"params": ps, "lr_scale": s, "weight_decay": config.weight_decay if decays else 0.0}
            for (s, decays), ps in groups.items()]


class TorchTrainStep:
    """``train_step.make_train_step`` for the twin: step(batch) -> metrics, the twin's
    parameters updated in place. Forward, ``Objective``, backward, clipping to global norm
    ``config.grad_clip_norm``, then AdamW (b1 0.9, b2 0.999, eps 1e-8, as ``optim.make_optimizer``)
    at ``optim.learning_rate_schedule``'s rate for this step.

    ``compiled``: the forward and loss, and so (through AOTAutograd) their backward, run as one
    ``torch.compile``d function. The update is the fused CPU AdamW (one kernel per parameter)
    either way: compiled with Inductor, soft_share's (210 parameters) took 3 minutes to compile on
    a busy 2-core machine and ran no faster (9 against 6 ms, of a ~400 ms step). One difference from
    optax, below float32 noise: ``clip_grad_norm_`` scales by max_norm / (norm + 1e-6), optax by
    max_norm / norm.
    """

    def __init__(self, twin: TorchTwin, config, manifest, compiled: bool = False):
        if config.grad_accum_steps != 1 or train_step.ema_decay(config) > 0:
            raise NotImplementedError(f"the PyTorch twin's train step does not implement config.grad_accum_steps="
                                      f"{config.grad_accum_steps} or config.ema_decay={train_step.ema_decay(config)}")
        self.twin, self.objective, self.max_norm = twin, Objective(config, manifest), config.grad_clip_norm
        self.step = 0
        schedule = optim.learning_rate_schedule(config)
        # The schedule is constant after its decay steps: beyond the table, its last value.
        self.learning_rates = np.asarray(schedule(np.arange(max(config.num_train_steps, config.warmup_steps + 1) + 1)))
        self.optimizer = torch.optim.AdamW(_param_groups(twin, config), betas=(0.9, 0.999), eps=1e-8, fused=True)
        self._loss = torch.compile(self._forward_loss) if compiled else self._forward_loss

    def __call__(self, batch):
        if not self.twin.training:
            self.twin.train()
        rate = float(self.learning_rates[min(self.step, len(self.learning_rates) - 1)])
        for group in self.optimizer.param_groups:
            group["lr"] = rate * group["lr_scale"]
        self.optimizer.zero_grad(set_to_none=True)
        loss, metrics = self._loss(batch)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.twin.parameters(), self.max_norm)
        self.optimizer.step()
        self.step += 1
        return {"loss": loss.detach(), "grad_norm": grad_norm, **metrics}

    def _forward_loss(self, batch):
        logits = self.twin(batch)
        loss, per_task = self.objective(self.twin, logits, batch["labels"])
        metrics = {}
        for name, (total, count) in per_task.items():  # the train step's metrics: sums over the batch
            correct = (logits[name].argmax(-1) == batch["labels"][name]).sum()  # an unlabelled -1 never matches
            metrics.update({f"{name}/loss_sum": total.detach(), f"{name}/count": count, f"{name}/correct": correct})
        return loss, metrics


class TorchEvalStep:
    """``train_step.make_eval_step`` for the twin: step(batch) -> per task its loss sum, count,
    predicted classes int64 [B, T] and confusion matrix int64 [classes, classes], without
    gradients. ``compiled``: through ``torch.compile``."""

    def __init__(self, twin: TorchTwin, compiled: bool = False):
        self.twin = twin
        self._evaluate = torch.compile(self._outputs) if compiled else self._outputs

    def __call__(self, batch):
        if self.twin.training:
            self.twin.eval()
        with torch.no_grad():
            return self._evaluate(batch)

    def _outputs(self, batch):
        out, outputs = {}, self.twin(batch)
        for task in self.twin.tasks:
            logits, labels, classes = outputs[task.name], batch["labels"][task.name], task.num_classes
            out[f"{task.name}/loss_sum"], out[f"{task.name}/count"] = _cross_entropy(logits, labels)
            predicted = logits.argmax(-1)
            index = torch.where(labels >= 0, labels * classes + predicted, classes * classes).flatten()
            counts = torch.zeros(classes * classes + 1, dtype=torch.int64).index_add_(0, index, torch.ones_like(index))
            out[f"{task.name}/confusion"] = counts[:-1].view(classes, classes)  # the last bin: unlabelled
            out[f"predicted/{task.name}"] = predicted
        return out


# --- The faithfulness check and the benchmark. ------------------------------------------------------------


def jax_objective(config, manifest, model):
    """(params, batch) -> (logits, objective) of the JAX model at train=False, jitted: the
    objective of ``train_step.make_train_step`` without dropout."""
    tasks = {t.name: t for t in model.tasks}
    class_weights = losses.class_weights(config, manifest)

    def objective(params, batch):
        logits = model.apply({"params": params}, batch, train=False)
        counts = losses.label_counts(tasks, batch["labels"])
        loss, _ = losses.task_loss(tasks, logits, batch["labels"], counts, losses.task_weights(params, config),
                                   class_weights, losses.regression_loss(config))
        return logits, loss + losses.regulariser(params, config)[0]

    return jax.jit(objective)


def compare(config, manifest, model, params, twin: TorchTwin, batch) -> dict:
    """The twin's logits and objective against the JAX model's on ``batch`` (numpy), with the
    JAX ``params`` (the twin holds them, ``load_jax_params``), both at train=False."""
    logits, loss = jax.device_get(jax_objective(config, manifest, model)(params, batch))
    twin.eval()
    with torch.no_grad():
        torch_batch = to_torch(batch)
        twin_logits = twin(torch_batch)
        twin_loss, _ = Objective(config, manifest)(twin, twin_logits, torch_batch["labels"])
    return {"max_abs_logit_difference": max(float(np.max(np.abs(logits[t] - twin_logits[t].numpy()))) for t in logits),
            "max_abs_logit": max(float(np.max(np.abs(v))) for v in logits.values()),
            "loss_jax": float(loss), "loss_twin": float(twin_loss),
            "loss_difference": abs(float(loss) - float(twin_loss))}


class JaxSteps:
    """JAX's compiled train and eval steps as ``mmjax.benchmark`` times them (``setup.compile_train_step``
    and ``setup.jit_eval_step``), on one state that ``train`` advances; compile seconds of each."""

    def __init__(self, config, s: setup_lib.Setup, eval_batch):
        start = time.perf_counter()
        self._train, _ = setup_lib.compile_train_step(s, config)
        self.compile_seconds = {"train": time.perf_counter() - start}
        self.state = setup_lib.initial_state(s)
        start = time.perf_counter()
        with sharding.activate(s.mesh, s.rules):
            self._eval = setup_lib.jit_eval_step(s).lower(self.state.params, eval_batch).compile()
        self.compile_seconds["eval"] = time.perf_counter() - start

    def train(self, batch):
        self.state, metrics = self._train(self.state, batch)
        return self.state, metrics  # both, so that timing waits for the update too

    def evaluate(self, batch):
        return self._eval(self.state.params, batch)


def _timed_call(step, batch) -> tuple[object, float]:
    """step(batch), and its seconds (the first call of a compiled step: its compile time)."""
    start = time.perf_counter()
    out = jax.block_until_ready(step(batch))
    return out, time.perf_counter() - start


def _interleaved(sides: dict, batches: dict, rounds: int, steps: int, label: str = "") -> dict[str, list[float]]:
    """side -> its median step seconds in each of ``rounds`` rounds of ``steps`` steps, the sides
    taking turns within each round; side "jax" cycles through batches["jax"], the others through
    batches["torch"] (``measurements._timed``: each step synced). Each round's medians go to
    stderr, prefixed by ``label``."""
    times: dict[str, list[float]] = {side: [] for side in sides}
    for r in range(rounds):
        for side, step in sides.items():
            timed = measurements._timed(step, batches[_framework(side)], steps, warmup=0)
            times[side].append(timed["median_step_seconds"])
        _progress(f"{label}round {r + 1}/{rounds}: " + ", ".join(f"{side} {1e3 * t[-1]:.1f} ms" for side, t in times.items()))
    return times


def _progress(line: str) -> None:
    print(f"{PROGRAM}: {line}", file=sys.stderr, flush=True)


def _framework(side: str) -> str:
    """Which batches a side reads: "jax" (global jax.Arrays) or "torch" (tensors)."""
    return "jax" if side == "jax" else "torch"


def benchmark(config, rounds: int, steps: int, warmup: int, threads: list[int]) -> dict:
    """The faithfulness check, then the interleaved timings (module docstring); the results as
    ``format_results`` prints them."""
    manifest = prepared_records.load_or_prepare(config)
    s = setup_lib.build(config, manifest=manifest)
    data = iter(inputs.train_dataset(config, manifest, jax.process_index(), jax.process_count()))
    numpy_batches = {"train": [next(data) for _ in range(BATCHES)],
                     "eval": [b for b, _ in zip(inputs.eval_batches(config, manifest, "validation", jax.process_index(),
                                                                    jax.process_count()), range(BATCHES))]}
    batches = {kind: {"jax": [sharding.global_batch(b, s.mesh) for b in bs], "torch": [to_torch(b) for b in bs]}
               for kind, bs in numpy_batches.items()}
    _progress("compiling the JAX train and eval steps...")
    jax_steps = JaxSteps(config, s, batches["eval"]["jax"][0])
    params = jax.device_get(jax_steps.state.params)
    twin = TorchTwin(config, manifest)
    load_jax_params(twin, params)
    results = {
        "devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}", "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "jax": jax.__version__, "torch": torch.__version__,
        "batch_size": config.batch_size, "eval_batch_size": config.eval_batch_size,
        "parameters": {"jax": measurements.parameter_counts(params)["total"], "twin": parameter_count(twin)},
        "faithfulness": compare(config, manifest, s.model, params, twin, numpy_batches["eval"][0]),
        "compile_seconds": {"jax": jax_steps.compile_seconds},
        "step_seconds": {"train": {}, "eval": {}},
    }
    for t in threads:
        torch.set_num_threads(t)
        torch._dynamo.reset()  # compile afresh for t threads (the kernels bake the thread count in)
        _progress(f"torch.compile for {t} thread(s)...")
        eager, compiled = copy.deepcopy(twin), copy.deepcopy(twin)
        sides = {"train": {"jax": jax_steps.train, f"eager/{t}": TorchTrainStep(eager, config, manifest),
                           f"compiled/{t}": TorchTrainStep(compiled, config, manifest, compiled=True)},
                 "eval": {"jax": jax_steps.evaluate, f"eager/{t}": TorchEvalStep(eager),
                          f"compiled/{t}": TorchEvalStep(compiled, compiled=True)}}
        # Compile, and check that the compiled eval step computes what eager does (both twins
        # still hold the JAX params): the same loss sums, to float32 rounding.
        first = {kind: batches[kind]["torch"][0] for kind in sides}
        eager_eval = sides["eval"][f"eager/{t}"](first["eval"])
        compiled_eval, eval_seconds = _timed_call(sides["eval"][f"compiled/{t}"], first["eval"])
        results["faithfulness"][f"compiled/{t}_vs_eager_max_relative_loss_sum_difference"] = max(
            abs(float(compiled_eval[k] / eager_eval[k] - 1)) for k in eager_eval if k.endswith("/loss_sum"))
        results["compile_seconds"][f"compiled/{t}"] = {
            "train": _timed_call(sides["train"][f"compiled/{t}"], first["train"])[1], "eval": eval_seconds}
        for kind, kind_sides in sides.items():
            for side, step in kind_sides.items():
                data = batches[kind][_framework(side)]
                for i in range(warmup):
                    jax.block_until_ready(step(data[i % len(data)]))
        for kind, kind_sides in sides.items():
            for side, times in _interleaved(kind_sides, batches[kind], rounds, steps, f"{kind}, {t} thread(s), ").items():
                results["step_seconds"][kind].setdefault(side, []).extend(times)
    return _summarise(results)


def _summarise(results: dict) -> dict:
    """Adds each side's median step seconds, its best over thread counts, and JAX's speed-up
    (the torch side's step time over JAX's) over each torch side's best."""
    medians = {kind: {side: float(np.median(times)) for side, times in sides.items()}
               for kind, sides in results["step_seconds"].items()}
    best = {kind: {peer: min((seconds, side) for side, seconds in sides.items() if side.startswith(peer + "/"))
                   for peer in ("eager", "compiled")} for kind, sides in medians.items()}
    return {**results, "median_step_seconds": medians,
            "best": {kind: {peer: {"seconds": seconds, "threads": int(side.split("/")[1])}
                            for peer, (seconds, side) in peers.items()} for kind, peers in best.items()},
            "jax_speedup": {kind: {peer: seconds / medians[kind]["jax"] for peer, (seconds, _) in peers.items()}
                            for kind, peers in best.items()}}


def format_results(results: dict) -> str:
    """A readable summary: parameters, the faithfulness check, compile seconds, step times, ratios."""
    f, p = results["faithfulness"], results["parameters"]
    medians, speedup = results["median_step_seconds"], results["jax_speedup"]
    lines = [f"{results.get('config', 'config')}: parameters JAX {p['jax']:,}, PyTorch twin {p['twin']:,}",
             f"same params, same batch (eval): max |logit difference| {f['max_abs_logit_difference']:.2e} "
             f"(logits up to {f['max_abs_logit']:.2f}); loss JAX {f['loss_jax']:.6f}, twin {f['loss_twin']:.6f}; "
             "compiled vs eager: loss sums within a relative " + ", ".join(
                 f"{v:.1e}" for k, v in f.items() if k.startswith("compiled/")),
             "compile seconds (first call): " + "; ".join(f"{side} train {c['train']:.1f}, eval {c['eval']:.1f}"
                                                          for side, c in results["compile_seconds"].items()),
             f"XLA_FLAGS={results['xla_flags']!r} (JAX: XLA's CPU thread pool over the {results['cpu_count']} cores); "
             f"batch {results['batch_size']} train, {results['eval_batch_size']} eval windows",
             "", f"{'median step, ms':<26}{'train':>10}{'eval':>10}"]
    for side in medians["train"]:
        label = "JAX" if side == "jax" else f"torch {side.split('/')[0]}, {side.split('/')[1]} thread(s)"
        lines.append(f"{label:<26}{medians['train'][side] * 1e3:>10.2f}{medians['eval'][side] * 1e3:>10.2f}")
    for peer in ("eager", "compiled"):
        lines.append(f"{'JAX speed-up vs ' + peer:<26}{speedup['train'][peer]:>9.2f}x{speedup['eval'][peer]:>9.2f}x")
    return "\n".join(lines)


def _define_flags():
    config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
    flags.DEFINE_integer("rounds", 5, "Interleaved rounds per torch thread count.")
    flags.DEFINE_integer("steps", 20, "Timed steps of each side in each round.")
    flags.DEFINE_integer("warmup", 3, "Untimed steps of each side first (after compiling).")
    flags.DEFINE_list("threads", ["1", "2"], "torch.set_num_threads values to time; each side's best is reported.")
    flags.DEFINE_string("json", None, "Also write the results to this JSON file.")
    flags.mark_flags_as_required(["config"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import torch._functorch.config
    import torch._inductor.config

    jax.config.update("jax_platforms", "cpu")  # the peer runs on the CPU: so does JAX
    # Cold compiles, as XLA's (no persistent cache here): Inductor's on-disk caches off.
    torch._inductor.config.fx_graph_cache = False
    torch._functorch.config.enable_autograd_cache = False
    cli.initialize()
    FLAGS = flags.FLAGS
    with cli.user_errors(PROGRAM):
        try:
            results = benchmark(FLAGS.config, FLAGS.rounds, FLAGS.steps, FLAGS.warmup, [int(t) for t in FLAGS.threads])
        except NotImplementedError as e:
            print(f"{PROGRAM}: error: {e}", file=sys.stderr)
            sys.exit(2)
    results["config"] = config_flags.get_config_filename(FLAGS["config"])
    print(format_results(results))
    if FLAGS.json:
        with open(FLAGS.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    cli.run(PROGRAM, _define_flags, main)
