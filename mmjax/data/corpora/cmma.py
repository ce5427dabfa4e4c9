"""CMMA (Zhang et al., NeurIPS 2023 Datasets and Benchmarks): Chinese multi-party TV dialogues
labelled for all four tasks and both task-correlation labels.

Input: a directory with ``train.csv``, ``dev.csv``, ``test.csv`` (-> train / validation / test)
and, when present, ``CMMA-TopicDescription.csv`` and ``CMMA-RoleIntroduction.csv``. Encoding
GB18030, as published (``--encoding`` reads a re-saved copy). Columns read: ConversationID,
UtteranceID, Utterance, Speaker, Emotion, Sentiment, Sarcasm, Humor, Relevancy(Emo→Sen),
Relevancy(Sar→Hum), Pride, Love (StartTime/EndTime are not used).

Mapping: Emotion -> ``emotion``, Sentiment -> ``sentiment``, Sarcasm (none/sarcastic) ->
``sarcasm``, Humor (none/humor) -> ``humor``, Relevancy(Emo→Sen) -> ``emotion_sentiment``,
Relevancy(Sar→Hum) -> ``sarcasm_humor`` (-2..2). Pride and Love are not mmjax tasks; they are
kept as auxiliary labels (``label_pride``/``label_love`` in the records, counts in the manifest).
The topic table becomes each dialogue's ``info["topic"]``; the role table (speaker -> gender,
profession, personality, age) goes to the manifest's ``cmma.roles``.

Order: conversations by the number in ``C_<n>``, utterances by the number in
``<ConversationID>_U_<n>``.

Quirk rules (each counted in the manifest's ``report.rules_applied``):

* test.csv's header says ``CoversationID``: read as ``ConversationID`` (header alias).
* Emotion ``digust`` (test, 6 rows) is ``disgust`` (label alias).
* Love ``emptylove`` (train) and ``empty`` (dev/test) are one class, ``empty`` (label alias).
* Relevancy(Sar→Hum) ``0.5``/``-0.5`` (three train rows) lie between points of the -2..2 scale:
  that label is unlabelled (-1); rounding would invent a direction. Other values off the
  scale are errors.
* 1,912 completely blank rows at the end of train.csv are dropped. (The README's 1,801 train
  conversations counts their empty ConversationID as one; there are 1,800 real ones.)
* Two train UtteranceIDs lack their number (``C_56_U_``, ``C_60_U_``): such a row keeps its
  place in the file (directly after the row before it, which its StartTime confirms) and its id.
* The role table lists 关宏宇 twice (the second with a trailing space and other values): the first
  entry is kept. Every field is stripped of surrounding whitespace (18 topics have some).
"""

from __future__ import annotations

import os
import re

from mmjax.data.corpora import common
from mmjax.errors import RecordError
from mmjax.tasks import RELATION_SCALE, TASKS

LANGUAGE = "zh"
ENCODING = "gb18030"
SPLIT_FILES = {"train": "train.csv", "validation": "dev.csv", "test": "test.csv"}
TOPIC_FILE = "CMMA-TopicDescription.csv"
ROLE_FILE = "CMMA-RoleIntroduction.csv"
HEADER_ALIASES = {"CoversationID": "ConversationID"}
TASK_COLUMNS = {"sentiment": "Sentiment", "emotion": "Emotion", "sarcasm": "Sarcasm", "humor": "Humor",
                "emotion_sentiment": "Relevancy(Emo→Sen)", "sarcasm_humor": "Relevancy(Sar→Hum)"}
AUXILIARY = {"pride": ("Pride", ("none", "pride")), "love": ("Love", ("none", "growing", "immediate", "empty"))}
LABEL_ALIASES = {"Emotion": {"digust": "disgust"}, "Love": {"emptylove": "empty"}}
COLUMNS = ("ConversationID", "UtteranceID", "Utterance", "Speaker", *TASK_COLUMNS.values(),
           *(column for column, _ in AUXILIARY.values()))
ROLE_COLUMNS = {"Speaker": "speaker", "Gender": "gender", "Profession": "profession",
                "Personality": "personality", "Age（少年、青年、中年、老年）": "age"}


def _relation(value: str, column: str, where: str, problems: common.Problems) -> int | None:
    """Class id of a -2..2 relevancy value; -1 for a value between scale points; None if bad."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if -2 <= number <= 2:
        if number == int(number):
            return RELATION_SCALE.index(str(int(number)))
        problems.note(f"{column} {value!r} between scale points: unlabelled")
        return -1
    problems.bad("unknown label (label dropped)", where,
                 f"{column} {value!r} is not a label; expected one of {list(RELATION_SCALE)}")
    return None


def _turn(row: dict, where: str, problems: common.Problems) -> common.Turn | None:
    labels = {}
    for task, column in TASK_COLUMNS.items():
        if TASKS[task].relates:
            value = _relation(row[column], column, where, problems)
        else:
            value = common.label_id(TASKS[task].labels, row[column], column, where, problems,
                                    LABEL_ALIASES.get(column))
        if value is not None and value >= 0:  # None: a bad label, dropped (the utterance stays)
            labels[task] = value
    for name, (column, names) in AUXILIARY.items():
        value = common.label_id(names, row[column], column, where, problems, LABEL_ALIASES.get(column))
        if value is not None:
            labels[name] = value
    return common.Turn(row["UtteranceID"], row["Speaker"], row["Utterance"], where, labels)


def _number(identifier: str, pattern: str) -> int | None:
    match = re.fullmatch(pattern, identifier)
    return int(match.group(1)) if match and match.group(1) else None


def _read_split(path: str, encoding: str, topics: dict, problems: common.Problems) -> list[common.RawDialogue]:
    conversations: dict[str, list[tuple[int, common.Turn]]] = {}
    for where, row in common.read_csv(path, encoding, COLUMNS, problems, HEADER_ALIASES):
        conversation = row["ConversationID"]
        match = re.fullmatch(re.escape(conversation) + r"_U_(\d*)", row["UtteranceID"])
        if not conversation or not match:
            problems.bad("malformed utterance id", where, f"UtteranceID {row['UtteranceID']!r} of conversation "
                         f"{conversation!r}: expected '{conversation or 'C_<n>'}_U_<turn number>'")
            continue
        turn = _turn(row, where, problems)
        if turn is None:
            continue
        turns = conversations.setdefault(conversation, [])
        if match.group(1):
            number = int(match.group(1))
        else:  # rule: an id without its number stays where the file puts it
            problems.note("UtteranceID without a turn number: kept at its file position")
            number = turns[-1][0] if turns else 0
        turns.append((number, turn))
    ordered = sorted(conversations, key=lambda c: (_number(c, r"C_(\d+)") is None, _number(c, r"C_(\d+)") or 0, c))
    dialogues = []
    for conversation in ordered:
        turns = [t for _, t in sorted(conversations[conversation], key=lambda nt: nt[0])]  # stable
        info = {"topic": topics[conversation]} if conversation in topics else {}
        dialogues.append(common.RawDialogue(conversation, turns, info))
    return dialogues


def _table(path: str, encoding: str, columns, problems: common.Problems) -> dict[str, dict[str, str]]:
    """First column -> {column: value} of an optional side table; {} when the file is absent."""
    if not os.path.isfile(path):
        return {}
    table = {}
    for where, row in common.read_csv(path, encoding, list(columns), problems):
        key = row[columns[0]]
        if key in table:  # rule: the first entry wins (关宏宇 is listed twice, with other values)
            problems.note(f"{os.path.basename(path)}: repeated {columns[0]} entry dropped (first kept)")
            continue
        table[key] = {k: v for k, v in row.items() if k != columns[0]}
    return table


def read(path: str, options: common.Options, problems: common.Problems) -> common.Corpus:
    if not os.path.isdir(path):
        raise RecordError(f"{path}: expected the CMMA directory holding {sorted(SPLIT_FILES.values())}")
    encoding = options.encoding or ENCODING
    topics = {k: v["TopicDescription"] for k, v in
              _table(os.path.join(path, TOPIC_FILE), encoding, ("ConversationID", "TopicDescription"),
                     problems).items()}
    roles = {speaker: {ROLE_COLUMNS[k]: v for k, v in row.items()} for speaker, row in
             _table(os.path.join(path, ROLE_FILE), encoding, tuple(ROLE_COLUMNS), problems).items()}
    splits = {split: _read_split(os.path.join(path, name), encoding, topics, problems)
              for split, name in SPLIT_FILES.items()}
    speakers = {t.speaker for d in splits.values() for x in d for t in x.turns}
    extra = {"cmma": {"roles": roles, "speakers_with_roles": len(speakers & roles.keys()),
                      "speakers": len(speakers),
                      "dialogues_with_topic": sum(bool(x.info) for d in splits.values() for x in d)}}
    return common.Corpus("cmma", LANGUAGE, splits, common.builtin_tasks(TASK_COLUMNS),
                         {name: names for name, (_, names) in AUXILIARY.items()}, extra)
