"""Scores per group of utterances — by speaker and by which modalities were present — computed
on the host from the eval step's per-row outputs.

Each utterance of the split is counted once (the row of the one window that predicts it, see
``pipeline.window_position``). Speakers are named as in the records; only the ``top`` most
frequent speakers get their own group, the rest share ``OTHER``, so the table stays readable
on corpora with hundreds of speakers. Modality patterns name the modalities the model reads that
the utterance has, e.g. "text+audio" (text is always present).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np

from mmjax import metrics
from mmjax.tasks import Task

OTHER = "(other speakers)"


def utterance_rows(batches: Sequence[dict]) -> dict[str, np.ndarray]:
    """Per-batch rows ({key: [B, T, ...]}) -> per-utterance arrays ({key: [N, ...]}) of the rows a
    window predicts, in window order."""
    rows = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
    keep = rows["position"][..., 0] >= 0  # [windows, T]
    return {k: v[keep] for k, v in rows.items()}


def modality_patterns(rows: dict[str, np.ndarray], modalities: Sequence[str]) -> np.ndarray:
    """str [N]: the modalities (of ``modalities``, in that order) each utterance has, '+'-joined."""
    present = np.stack([rows[f"present/{m}"] for m in modalities], -1)  # [N, M]
    return np.array(["+".join(m for m, p in zip(modalities, flags) if p) for flags in present.tolist()])


def speaker_groups(rows: dict[str, np.ndarray], dialogues, top: int, labelled: np.ndarray) -> np.ndarray:
    """str [N]: each utterance's speaker, or OTHER outside the ``top`` speakers with the most
    utterances ``labelled`` (bool [N]) for some task (context-only turns, e.g. MUStARD's, do not count).

    dialogues: indexable by the dialogue index of ``rows["position"]`` (a records.DialogueSource).
    """
    speakers_of = {}
    for d in np.unique(rows["position"][:, 0]).tolist():
        speakers_of[d] = dialogues[d].speakers
    names = np.array([speakers_of[d][t] for d, t in rows["position"].tolist()])
    counts = collections.Counter(names[labelled].tolist())
    kept = {name for name, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]}
    return np.where(np.isin(names, list(kept)), names, OTHER)


def group_scores(groups: np.ndarray, labels: np.ndarray, predicted: np.ndarray, task: Task) -> dict[str, dict]:
    """{group: the scores of ``metrics.SCORES[task.kind]`` and support} over the labelled
    utterances of each group, largest group first (OTHER last).

    groups: str [N]; labels: [N, ...] as stored; predicted: [N, ...] as from ``metrics.predict``.
    """
    labelled = task.is_labelled(labels)
    out = {}
    order = collections.Counter(groups[labelled].tolist())
    for group, _ in sorted(order.items(), key=lambda kv: (kv[0] == OTHER, -kv[1], kv[0])):
        member = labelled & (groups == group)
        scores = metrics.host_scores(task, predicted[member], labels[member])
        out[group] = {k: scores[k] for k in (*metrics.SCORES[task.kind], "support")}
    return out
