"""MUStARD (Castro et al., ACL 2019): sarcasm of a target utterance given its conversational context.

Input: ``sarcasm_data.json`` (or the directory holding it), UTF-8: an object mapping each target
id (``"1_60"``) to ``{"utterance", "speaker", "context": [str], "context_speakers": [str],
"show", "sarcasm": bool}``.

Record: one dialogue per target, id the target id: its context turns (utterance ids
``<id>_c0``, ``<id>_c1``, ...) then the target (utterance id ``<id>``), with their speakers.
Only the target is labelled (``sarcasm``); context turns are -1. The show goes to ``info``.

Text repairs (counted in the report): 12 FRIENDS/GOLDENGIRLS utterances carry ``Õ`` and one
``ā€™`` where an apostrophe was mis-decoded (Mac Roman / Windows-1257 mojibake of ’); both are
read as ``'``.

Split protocols (``--protocol``; recorded in the manifest's ``protocol``):

* ``speaker_independent`` (the paper's): test = every FRIENDS target (356); a seeded validation
  part (``--validation_fraction`` of each sarcasm class) is carved from the other shows.
* ``speaker_dependent``: 5 folds, stratified by sarcasm and seeded (``--seed``); ``--fold=k``
  makes fold k the test split and carves validation from the other four the same way. The
  manifest lists every target's fold, so the five runs of a cross-validation share one split.
"""

from __future__ import annotations

import json
import os

import numpy as np

from mmjax.data.corpora import common
from mmjax.errors import ConfigError, RecordError

LANGUAGE = "en"
FILE = "sarcasm_data.json"
FIELDS = ("utterance", "speaker", "context", "context_speakers", "show", "sarcasm")
PROTOCOLS = ("speaker_independent", "speaker_dependent")
TEST_SHOW = "FRIENDS"
NUM_FOLDS = 5
TEXT_REPAIRS = {"ā€™": "'", "Õ": "'"}


def _repair(text: str, problems: common.Problems) -> str:
    for bad, good in TEXT_REPAIRS.items():
        if bad in text:
            problems.note(f"mojibake {bad!r} read as {good!r}")
            text = text.replace(bad, good)
    return text


def _pairs_without_duplicates(path: str, problems: common.Problems):
    def hook(pairs):
        out = {}
        for key, value in pairs:  # json.loads would silently keep the last of repeated keys
            if key in out and isinstance(value, dict):  # records are the only objects holding objects
                problems.bad("duplicated utterance id", f"{path} record {key!r}",
                             f"target id {key!r} appears twice; expected unique ids")
                continue
            if key in out:
                problems.bad("malformed row", path, f"a record has field {key!r} twice; expected each field once")
                continue
            out[key] = value
        return out
    return hook


def _dialogue(key: str, record, where: str, problems: common.Problems) -> common.RawDialogue | None:
    if not isinstance(record, dict):
        problems.bad("malformed row", where, f"is a {type(record).__name__}, expected an object with {list(FIELDS)}")
        return None
    missing = [f for f in FIELDS if f not in record]
    if missing:
        problems.bad("malformed row", where, f"lacks {missing}; expected fields {list(FIELDS)}")
        return None
    context, speakers = record["context"], record["context_speakers"]
    if not (isinstance(context, list) and isinstance(speakers, list) and len(context) == len(speakers)
            and all(isinstance(x, str) for x in context + speakers + [record["utterance"], record["speaker"]])):
        problems.bad("malformed row", where, "expected strings utterance/speaker and lists of strings "
                     "context/context_speakers of equal length")
        return None
    if not isinstance(record["sarcasm"], bool):
        problems.bad("unknown label", where, f"sarcasm {record['sarcasm']!r} is not a label; expected true or false")
        return None
    turns = [common.Turn(f"{key}_c{i}", speaker, _repair(text, problems), f"{where} context[{i}]")
             for i, (text, speaker) in enumerate(zip(context, speakers))]
    turns.append(common.Turn(key, record["speaker"], _repair(record["utterance"], problems), where,
                             {"sarcasm": int(record["sarcasm"])}))
    return common.RawDialogue(key, turns, {"show": str(record["show"])})


def _sample(ids: list[str], labels: dict[str, int], fraction: float, rng) -> set[str]:
    """A seeded ``fraction`` of each class of ``ids`` (rounded, at least one where a class has 2+)."""
    chosen = set()
    for label in sorted({labels[i] for i in ids}):
        members = sorted(i for i in ids if labels[i] == label)
        n = int(round(fraction * len(members))) or (1 if len(members) > 1 and fraction > 0 else 0)
        chosen.update(members[j] for j in rng.permutation(len(members))[:n])
    return chosen


def stratified_folds(ids: list[str], labels: dict[str, int], folds: int, seed: int) -> dict[str, int]:
    """id -> fold in [0, folds): each class is shuffled (seeded) and dealt round-robin."""
    rng = np.random.default_rng(seed)
    assignment = {}
    for label in sorted({labels[i] for i in ids}):
        members = sorted(i for i in ids if labels[i] == label)
        for position, j in enumerate(rng.permutation(len(members))):
            assignment[members[j]] = position % folds
    return assignment


def split(dialogues: dict[str, common.RawDialogue], options: common.Options) -> tuple[dict, dict]:
    """(split -> target ids, the manifest's ``protocol``) of the chosen protocol."""
    protocol = options.protocol or PROTOCOLS[0]
    if protocol not in PROTOCOLS:
        raise ConfigError(f"--protocol={protocol!r} is not one of {list(PROTOCOLS)}")
    if not 0 <= options.validation_fraction < 1:
        raise ConfigError(f"--validation_fraction={options.validation_fraction}: expected a value in [0, 1)")
    labels = {k: d.turns[-1].labels["sarcasm"] for k, d in dialogues.items()}
    spec = {"name": protocol, "seed": options.seed, "validation_fraction": options.validation_fraction}
    if protocol == "speaker_independent":
        test = [k for k, d in dialogues.items() if d.info["show"] == TEST_SHOW]
        spec["test_show"] = TEST_SHOW
    else:
        if not 0 <= options.fold < NUM_FOLDS:
            raise ConfigError(f"--fold={options.fold}: expected a fold in [0, {NUM_FOLDS})")
        fold_of = stratified_folds(list(dialogues), labels, NUM_FOLDS, options.seed)
        test = [k for k in dialogues if fold_of[k] == options.fold]
        spec.update(folds=NUM_FOLDS, fold=options.fold, fold_of=fold_of)
    rest = [k for k in dialogues if k not in set(test)]
    # the validation draw gets its own stream, so it does not shift when the fold assignment changes
    validation = _sample(rest, labels, options.validation_fraction, np.random.default_rng([options.seed, 1]))
    spec["validation_ids"] = sorted(validation)
    ids = {"train": [k for k in rest if k not in validation], "validation": [k for k in rest if k in validation],
           "test": test}
    return ids, spec


def read(path: str, options: common.Options, problems: common.Problems) -> common.Corpus:
    if os.path.isdir(path):
        path = os.path.join(path, FILE)
    if not os.path.isfile(path):
        raise RecordError(f"{path}: file not found; expected MUStARD's {FILE}")
    lines = common.read_lines(path, options.encoding or "utf-8", problems)
    try:
        data = json.loads("".join(line for _, line in lines),
                          object_pairs_hook=_pairs_without_duplicates(path, problems))
    except json.JSONDecodeError as e:
        raise RecordError(f"{path} line {e.lineno}: not valid JSON ({e.msg}); expected MUStARD's {FILE}") from e
    if not isinstance(data, dict):
        raise RecordError(f"{path}: the top level is a {type(data).__name__}, expected an object mapping "
                          "target ids to records")
    dialogues = {}
    for key, record in common.progress(data.items(), os.path.basename(path), total=len(data), unit="record"):
        dialogue = _dialogue(key, record, f"{path} record {key!r}", problems)
        if dialogue is not None:
            dialogues[key] = dialogue
    ids, protocol = split(dialogues, options)
    splits = {name: [dialogues[k] for k in keys] for name, keys in ids.items()}
    return common.Corpus("mustard", LANGUAGE, splits, common.builtin_tasks(["sarcasm"]), extra={"protocol": protocol})
