"""MELD (Poria et al., ACL 2019): emotion and sentiment in multi-party dialogues from Friends.

Input: a directory with ``train_sent_emo.csv``, ``dev_sent_emo.csv``, ``test_sent_emo.csv``
(-> train / validation / test), UTF-8. Columns read: Utterance, Speaker, Emotion, Sentiment,
Dialogue_ID, Utterance_ID, Season, Episode (``Sr No.`` is not unique in train and not used).

Mapping: Emotion -> ``emotion`` (neutral, joy, surprise, anger, sadness, disgust, fear: MELD's
seven are mmjax's), Sentiment -> ``sentiment``. Utterance ids are MELD's clip names prefixed by
its split, ``train/dia0_utt0``, ``dev/...``, ``test/...`` (so a feature directory laid out like
MELD's clips, ``<dir>/train/dia0_utt0.npy``, attaches as is); dialogue ids ``train/dia0``.
Dialogues in Dialogue_ID order, utterances in Utterance_ID order. Some Utterance_IDs are missing
in the published files (clips MELD dropped): the dialogue keeps the others in order. Season and
episode go to each dialogue's ``info``.
"""

from __future__ import annotations

import os

from mmjax.data.corpora import common
from mmjax.errors import RecordError
from mmjax.tasks import TASKS

LANGUAGE = "en"
ENCODING = "utf-8"
SPLIT_FILES = {"train": ("train", "train_sent_emo.csv"), "validation": ("dev", "dev_sent_emo.csv"),
               "test": ("test", "test_sent_emo.csv")}
TASK_COLUMNS = {"sentiment": "Sentiment", "emotion": "Emotion"}
COLUMNS = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season", "Episode")


def _read_split(path: str, prefix: str, encoding: str, problems: common.Problems) -> list[common.RawDialogue]:
    dialogues: dict[int, list[tuple[int, common.Turn]]] = {}
    info: dict[int, dict[str, str]] = {}
    for where, row in common.read_csv(path, encoding, COLUMNS, problems):
        if not (row["Dialogue_ID"].isdigit() and row["Utterance_ID"].isdigit()):
            problems.bad("malformed utterance id", where, f"Dialogue_ID {row['Dialogue_ID']!r}, Utterance_ID "
                         f"{row['Utterance_ID']!r}: expected non-negative integers")
            continue
        labels = {task: common.label_id(TASKS[task].labels, row[column], column, where, problems)
                  for task, column in TASK_COLUMNS.items()}
        labels = {task: value for task, value in labels.items() if value is not None}  # bad labels dropped
        dialogue, utterance = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
        turn = common.Turn(f"{prefix}/dia{dialogue}_utt{utterance}", row["Speaker"], row["Utterance"], where, labels)
        dialogues.setdefault(dialogue, []).append((utterance, turn))
        info.setdefault(dialogue, {"season": row["Season"], "episode": row["Episode"]})
    return [common.RawDialogue(f"{prefix}/dia{d}", [t for _, t in sorted(dialogues[d], key=lambda ut: ut[0])],
                               info[d]) for d in sorted(dialogues)]


def read(path: str, options: common.Options, problems: common.Problems) -> common.Corpus:
    if not os.path.isdir(path):
        raise RecordError(f"{path}: expected the MELD directory holding "
                          f"{sorted(name for _, name in SPLIT_FILES.values())}")
    splits = {split: _read_split(os.path.join(path, name), prefix, options.encoding or ENCODING, problems)
              for split, (prefix, name) in SPLIT_FILES.items()}
    return common.Corpus("meld", LANGUAGE, splits, common.builtin_tasks(TASK_COLUMNS))
