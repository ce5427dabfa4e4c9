"""Preparing a corpus as records (``python -m mmjax.prepare``): the registry of corpora, the
dispatch between the synthetic generator and the converters, with the text-state cache of a
frozen encoder where asked for, and the summary table printed afterwards."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from mmjax.data import records
from mmjax.data.corpora import cmma, common, conversion, jsonl, meld, mmsa, mustard, synthetic
from mmjax.errors import ConfigError
from mmjax.models import text_states as text_states_lib
from mmjax.tasks import CLASSIFICATION, REGRESSION, corpus_tasks

CONVERTERS = {"cmma": cmma, "meld": meld, "mustard": mustard, "jsonl": jsonl, "mmsa": mmsa}
CORPORA = {"synthetic": synthetic, **CONVERTERS}
DEFAULT_DIALOGUES = {"train": 1600, "validation": 250, "test": 250}  # the synthetic corpus's, per split


def prepare(corpus: str, output: str, *, input_path: str | None = None, options: common.Options = common.Options(),
            tokenizer: str = "", text_states: str = "", audio: str = "", visual: str = "", name: str = "",
            dialogues: Mapping[str, int] | Sequence[str] | None = None) -> dict:
    """Writes the records of ``corpus`` (a name of ``CORPORA``) to ``output``; the manifest.

    ``input_path``: the corpus files (not for "synthetic"); ``text_states``: as ``prepare
    --text_states`` ('' none, 'minilm' or a checkpoint directory); ``dialogues``: the synthetic
    corpus's dialogues per split, or "split:count" strings (seeded by ``options.seed``); the rest
    as ``conversion.convert``.
    """
    if corpus not in CORPORA:
        raise ConfigError(f"--corpus={corpus!r} is not one of {sorted(CORPORA)}")
    records.check_replaceable(output)  # now, not after converting, which can take minutes
    cache = text_states_lib.from_flag(text_states)
    if corpus == "synthetic":
        if tokenizer in ("char", "word"):
            raise ConfigError(f"--tokenizer={tokenizer} builds a vocabulary of a converted corpus; the "
                              "synthetic corpus takes '' (its own words), 'minilm' or a tokenizer directory")
        counts = parse_counts(dialogues) if isinstance(dialogues, (list, tuple)) else dialogues or DEFAULT_DIALOGUES
        return synthetic.write(output, counts, options.seed, tokenizer=tokenizer, text_states=cache)
    if not input_path:
        raise ConfigError(f"--corpus={corpus} needs --input (the corpus files)")
    return conversion.convert(CONVERTERS[corpus], input_path, output, options, tokenizer=tokenizer, audio=audio,
                          visual=visual, name=name, text_states=cache)


def parse_counts(items) -> dict[str, int]:
    counts = {}
    for item in items:
        split, _, count = item.partition(":")
        if not count.isdigit() or int(count) <= 0:
            raise ConfigError(f"--dialogues entry {item!r}: expected split:positive_count")
        counts[split] = int(count)
    return counts


def summary_table(manifest: Mapping, max_tokens: int = 40) -> str:
    """Utterances per split and per class of every task (multi-label: per label; regression:
    labelled utterances and the values' mean ± std), then the preparation report, with the
    utterances longer than ``max_tokens`` tokens."""
    splits = manifest["splits"]
    names = list(splits)
    lines = [f"corpus {manifest['corpus']}  (schema v{manifest['schema_version']})",
             f"{'':<32}" + "".join(f"{s:>12}" for s in names),
             f"{'dialogues':<32}" + "".join(f"{splits[s]['dialogues']:>12,}" for s in names),
             f"{'utterances':<32}" + "".join(f"{splits[s]['utterances']:>12,}" for s in names)]
    for task, spec in corpus_tasks(manifest).items():
        if spec.kind != CLASSIFICATION:  # a class's counts add up to the labelled utterances; these do not
            lines.append(f"{task + ' (labelled)':<32}" + "".join(f"{splits[s]['labelled'][task]:>12,}" for s in names))
        if spec.kind == REGRESSION:
            stats = [splits[s]["value_stats"][task] for s in names]
            lines.append(f"{task + ' mean ± std':<32}" + "".join(
                f"{v['mean']:>6.2f} ± {v['std']:<3.2f}" if v else f"{'-':>12}" for v in stats))
        for label in spec.labels:
            lines.append(f"{task + ' / ' + label:<32}" + "".join(
                f"{splits[s]['class_counts'][task][label]:>12,}" for s in names))
    report = manifest.get("report")
    if report:
        for modality, info in report["features"].items():
            lines.append(f"{modality + ' absent':<32}" + "".join(f"{info['absent'][s]:>12,}" for s in names)
                         + (f"   (dim {manifest['features'][modality + '_dim']}, from {info['source']})"
                            if info["source"] else "   (no features)"))
        for title, counts in (("rules applied", report["rules_applied"]), ("skipped (--skip-bad)", report["skipped"])):
            lines += [f"{title}:"] + [f"  {count:>8,}  {what}" for what, count in counts.items()] if counts else []
    tokens = (report or {}).get("tokens", {})
    if tokens:
        lines.append("tokens per utterance (p50 / p90 / p99 / max), and how many utterances "
                     f"--config.data.max_tokens={max_tokens} would cut:")
        for split, info in tokens.items():
            cut = records.tokens_cut(manifest, split, max_tokens)
            lengths = " / ".join(str(info["per_utterance"].get(k, 0)) for k in ("p50", "p90", "p99", "max"))
            lines.append(f"  {split:<12}{lengths:>20}   cut: {cut[0]:,} of {cut[1]:,}" if cut else f"  {split:<12}{lengths:>20}")
    if "text_states" in manifest:
        states = manifest["text_states"]
        lines.append(f"text states: {states['model']} (dim {states['dim']}, {states['dtype']}) per token")
    if "protocol" in manifest:
        protocol = {k: v for k, v in manifest["protocol"].items() if k not in ("fold_of", "validation_ids")}
        lines.append(f"protocol: {json.dumps(protocol)}")
    return "\n".join(lines)
