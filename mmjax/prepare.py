"""Prepare a corpus as records: ``python -m mmjax.prepare --corpus=NAME --input=PATH --output=DIR``.

Corpora (``mmjax.data.corpora``; formats and rules in each module's docstring and the README's
"Corpora" section): ``cmma``, ``meld``, ``mustard`` (the published files), ``jsonl`` (the generic
format for a corpus of one's own), ``mmsa`` (MMSA ``.pkl`` feature files) and ``synthetic``
(generated, needs no input). Examples::

    python -m mmjax.prepare --corpus=cmma --input=../shared/data/cmma --output=data_cache/cmma
    python -m mmjax.prepare --corpus=mustard --input=../shared/data/mustard --output=data_cache/mustard \\
        --protocol=speaker_dependent --fold=0 --seed=0
    python -m mmjax.prepare --corpus=jsonl --input=my_corpus/ --output=data_cache/mine --audio=feats.npz
    python -m mmjax.prepare --corpus=meld --input=../shared/data/meld --output=data_cache/meld_minilm \
        --text_states=minilm   # cache frozen MiniLM states for config.model.text_encoder="cached"

Writes ArrayRecord shards and ``manifest.json`` (``mmjax.data.records``) through a temporary
directory renamed at the end, shows progress on stderr and prints a summary table: utterances
per split and class, then the report (rules applied, input skipped, absent features).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping

from absl import app, flags

from mmjax import cli
from mmjax.data import records
from mmjax.data.corpora import cmma, common, jsonl, meld, mmsa, mustard, synthetic
from mmjax.errors import ConfigError
from mmjax.models import text_states
from mmjax.tasks import corpus_tasks

CONVERTERS = {"cmma": cmma, "meld": meld, "mustard": mustard, "jsonl": jsonl, "mmsa": mmsa}
CORPORA = {"synthetic": synthetic, **CONVERTERS}


def _define_flags():
    """Defined only when the command runs, so that command modules can be imported together."""
    flags.DEFINE_string("corpus", "synthetic", f"Corpus to prepare: one of {sorted(CORPORA)}.")
    flags.DEFINE_string("input", None, "The corpus files: a directory (cmma, meld, jsonl, mustard) or a file "
                        "(mustard's sarcasm_data.json, an mmsa .pkl).")
    flags.DEFINE_string("output", None, "Records directory to write (replaced atomically).")
    flags.DEFINE_bool("allow_outside_paths", False, "JSONL corpus: feature paths may leave the directory of "
                      "the .jsonl file (absolute, .., symlinks); by default they are refused.")
    flags.DEFINE_bool("skip_bad", False, "Skip malformed rows and feature arrays, counting them in the report, "
                      "instead of stopping at the first with an error.")
    flags.DEFINE_string("tokenizer", "", "'' the corpus default (characters of the training split for CMMA, "
                        "all-MiniLM-L6-v2 otherwise), 'char' or 'word' (a vocabulary of the training split), "
                        "or a Hugging Face tokenizer directory. Synthetic: '' its own words, 'minilm' or a directory.")
    flags.DEFINE_string("text_states", "", "Cache a frozen encoder's text states in the records (for "
                        "config.model.text_encoder='cached'): 'minilm' (all-MiniLM-L6-v2) or a BERT-family checkpoint "
                        "directory; its tokenizer must be the records' (--tokenizer). '' none.")
    flags.DEFINE_string("audio", "", "Audio features keyed by utterance id: an .npz, or a directory of "
                        "<utterance_id>.npy; each float [frames, dim].")
    flags.DEFINE_string("visual", "", "Visual features, as --audio.")
    flags.DEFINE_string("encoding", "", "Text encoding of the input files ('' the corpus's published one).")
    flags.DEFINE_string("name", "", "Corpus name in the manifest (config.data.corpus); '' the converter's name.")
    flags.DEFINE_string("protocol", "", f"MUStARD split protocol: one of {list(mustard.PROTOCOLS)} "
                        f"('' {mustard.PROTOCOLS[0]}).")
    flags.DEFINE_integer("fold", 0, f"MUStARD speaker_dependent: the test fold, 0..{mustard.NUM_FOLDS - 1}.")
    flags.DEFINE_float("validation_fraction", 0.1, "MUStARD: fraction of each class of the training data "
                       "held out for validation.")
    flags.DEFINE_integer("max_tokens", 40, "The summary says how many utterances a config.data.max_tokens of "
                         "this many tokens would cut (the records keep every token).")
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic generator and of MUStARD's splits.")
    flags.DEFINE_list("dialogues", ["train:1600", "validation:250", "test:250"],
                      "Synthetic corpus: dialogues per split, as split:count.")
    flags.mark_flags_as_required(["output"])


def parse_counts(items) -> dict[str, int]:
    counts = {}
    for item in items:
        split, _, count = item.partition(":")
        if not count.isdigit() or int(count) <= 0:
            raise ConfigError(f"--dialogues entry {item!r}: expected split:positive_count")
        counts[split] = int(count)
    return counts


def summary_table(manifest: Mapping, max_tokens: int = 40) -> str:
    """Utterances per split and per class of every task, then the preparation report, with the
    utterances longer than ``max_tokens`` tokens."""
    splits = manifest["splits"]
    names = list(splits)
    lines = [f"corpus {manifest['corpus']}  (schema v{manifest['schema_version']})",
             f"{'':<32}" + "".join(f"{s:>12}" for s in names),
             f"{'dialogues':<32}" + "".join(f"{splits[s]['dialogues']:>12,}" for s in names),
             f"{'utterances':<32}" + "".join(f"{splits[s]['utterances']:>12,}" for s in names)]
    for task, spec in corpus_tasks(manifest).items():
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


def options_from_flags(FLAGS) -> common.Options:
    return common.Options(skip_bad=FLAGS.skip_bad, encoding=FLAGS.encoding, protocol=FLAGS.protocol,
                          fold=FLAGS.fold, seed=FLAGS.seed, validation_fraction=FLAGS.validation_fraction,
                          allow_outside_paths=FLAGS.allow_outside_paths)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    with cli.user_errors("mmjax.prepare"):
        if FLAGS.corpus not in CORPORA:
            raise ConfigError(f"--corpus={FLAGS.corpus!r} is not one of {sorted(CORPORA)}")
        print(f"writing {FLAGS.corpus} records to {FLAGS.output}", file=sys.stderr)
        if FLAGS.corpus == "synthetic":
            if FLAGS.tokenizer in ("char", "word"):
                raise ConfigError(f"--tokenizer={FLAGS.tokenizer} builds a vocabulary of a converted corpus; the "
                                  "synthetic corpus takes '' (its own words), 'minilm' or a tokenizer directory")
            manifest = synthetic.write(FLAGS.output, parse_counts(FLAGS.dialogues), FLAGS.seed,
                                       tokenizer=FLAGS.tokenizer, text_states=text_states.from_flag(FLAGS.text_states))
        else:
            if not FLAGS.input:
                raise ConfigError(f"--corpus={FLAGS.corpus} needs --input (the corpus files)")
            manifest = common.prepare(CONVERTERS[FLAGS.corpus], FLAGS.input, FLAGS.output, options_from_flags(FLAGS),
                                      tokenizer=FLAGS.tokenizer, audio=FLAGS.audio, visual=FLAGS.visual,
                                      name=FLAGS.name, text_states=text_states.from_flag(FLAGS.text_states))
        print(summary_table(manifest, flags.FLAGS.max_tokens))


def command():
    """The ``mmjax-prepare`` console script (``python -m mmjax.prepare``)."""
    cli.run("mmjax.prepare", _define_flags, main)


if __name__ == "__main__":
    command()
