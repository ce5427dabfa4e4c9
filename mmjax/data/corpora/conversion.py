"""A converted corpus (``common.Corpus``, what each converter's ``read`` returns) into records:
checked, its features attached, tokenised, its text states cached where asked, written with its
manifest and the preparation report. The converters' shared toolkit is ``common``."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from mmjax.data import records, schema, text
from mmjax.data.corpora import common
from mmjax.errors import RecordError
from mmjax.tasks import Task

def _dialogue(raw: common.RawDialogue, tokens: Sequence[np.ndarray], tasks: Sequence[Task],
              auxiliary: Sequence[str]) -> schema.Dialogue:
    labels = {}
    for task in tasks:
        labels[task.name] = task.unlabelled(len(raw.turns))
        for i, turn in enumerate(raw.turns):
            if task.name in turn.labels:
                labels[task.name][i] = turn.labels[task.name]
    for name in auxiliary:  # class ids of labels that are not tasks
        labels[name] = np.array([t.labels.get(name, schema.UNLABELLED) for t in raw.turns], np.int32)
    return schema.Dialogue(
        dialogue_id=raw.dialogue_id, utterance_ids=[t.utterance_id for t in raw.turns],
        speakers=[t.speaker for t in raw.turns], texts=[t.text for t in raw.turns], tokens=list(tokens),
        audio=[t.audio for t in raw.turns], visual=[t.visual for t in raw.turns], labels=labels,
        info=dict(raw.info))


def _percentiles(values: Sequence[int]) -> dict[str, int]:
    if not len(values):
        return {}
    return {f"p{q}": int(np.percentile(values, q)) for q in (50, 90, 99)} | {"max": int(np.max(values))}


def _tokenize(corpus: common.Corpus, tok: text.Tokenizer) -> tuple[dict[str, list[schema.Dialogue]], dict]:
    """Record dialogues per split, and per split token / turn length percentiles and [UNK] share."""
    splits, report = {}, {}
    for split, raws in corpus.splits.items():
        flat = [t.text for d in raws for t in d.turns]
        ids = []
        for start in common.progress(range(0, len(flat), 4096), f"tokenize {split}", unit="batch"):
            ids += tok.encode_batch(flat[start:start + 4096])
        lengths = [len(x) for x in ids]
        unknown = sum(int(np.sum(x == tok.unk_id)) for x in ids) if tok.unk_id is not None else 0
        report[split] = {"per_utterance": _percentiles(lengths), "length_counts": np.bincount(lengths).tolist(),
                         "unknown_fraction": round(unknown / max(1, sum(lengths)), 5),
                         "turns_per_dialogue": _percentiles([len(d.turns) for d in raws])}
        offsets = np.cumsum([0] + [len(d.turns) for d in raws])
        splits[split] = [_dialogue(d, ids[offsets[i]:offsets[i + 1]], corpus.tasks, tuple(corpus.auxiliary))
                         for i, d in enumerate(raws)]
    return splits, report


def _auxiliary_counts(corpus: common.Corpus) -> dict:
    """The manifest's ``auxiliary_labels``: label names and counts per split of non-task labels."""
    out = {}
    for name, names in corpus.auxiliary.items():
        counts = {s: np.bincount([t.labels[name] for d in raws for t in d.turns if name in t.labels],
                                 minlength=len(names)).tolist() for s, raws in corpus.splits.items()}
        out[name] = {"labels": list(names), "class_counts": {s: dict(zip(names, c)) for s, c in counts.items()}}
    return out


def convert(converter, input_path: str, output_dir: str, options: common.Options = common.Options(), *,
            tokenizer: str = "", audio: str = "", visual: str = "", name: str = "",
            text_states=None) -> dict:
    """Reads ``input_path`` with ``converter`` and writes records to ``output_dir``; the manifest.

    ``tokenizer``: see ``text.for_corpus``; ``audio``/``visual``: FeatureFile paths; ``name``: the
    corpus name in the manifest (``config.data.corpus``), default the converter's;
    ``text_states``: None, or the callable that caches a frozen encoder's states in the records
    (``mmjax.models.text_states.Cache``: (splits, text section) -> the manifest's entry).
    """
    problems = common.Problems(options.skip_bad)
    corpus = converter.read(input_path, options, problems)
    corpus.name = name or corpus.name
    unknown = [s for s in corpus.splits if s not in common.SPLITS]
    if unknown or "train" not in corpus.splits:
        raise RecordError(f"{input_path}: splits {sorted(corpus.splits)}, expected 'train' and any of {common.SPLITS}")
    common.check_turns(corpus, problems)
    sources = {"audio": audio, "visual": visual}
    for modality, path in sources.items():
        if path:
            common.attach_features(corpus, modality, path, problems)
    dims = common.check_features(corpus, problems)
    tok = text.for_corpus(tokenizer, corpus.language, [t.text for d in corpus.splits["train"] for t in d.turns])
    splits, tokens = _tokenize(corpus, tok)
    states = None if text_states is None else text_states(splits, tok.describe())
    report = {"tokens": tokens, "features": {
        modality: {"source": sources[modality] or ("corpus" if dims[modality] else None),
                   "absent": {s: sum(getattr(t, modality) is None for d in raws for t in d.turns)
                              for s, raws in corpus.splits.items()}}  # utterances with the modality masked
        for modality in common.FEATURE_MODALITIES},
        "rules_applied": dict(sorted(problems.notes.items())), "skipped": dict(sorted(problems.skipped.items()))}
    extra = {"source": {"converter": converter.__name__.rsplit(".", 1)[-1], "input": os.path.abspath(input_path),
                        "skip_bad": options.skip_bad}, "report": report, **corpus.extra}
    if corpus.auxiliary:
        extra["auxiliary_labels"] = _auxiliary_counts(corpus)
    return records.write_corpus(output_dir, corpus.name, splits, tasks=corpus.tasks, audio_dim=dims["audio"],
                                visual_dim=dims["visual"], text=tok.describe(), text_states=states, extra=extra)
