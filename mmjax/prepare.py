"""Prepare a corpus as records: ``python -m mmjax.prepare --corpus=synthetic --output=DIR``.

Writes ArrayRecord shards and ``manifest.json`` (see ``mmjax.data.records``) and prints a summary
table of utterances per split and class.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from absl import app, flags

from mmjax import cli
from mmjax.data.corpora import synthetic
from mmjax.errors import ConfigError

CORPORA = {"synthetic": synthetic}

flags.DEFINE_string("corpus", "synthetic", f"Corpus to prepare: one of {sorted(CORPORA)}.")
flags.DEFINE_string("output", None, "Records directory to write (replaced atomically).")
flags.DEFINE_integer("seed", 0, "Synthetic corpus: generator seed.")
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


def summary_table(manifest: Mapping) -> str:
    """Utterances per split, and per class of every task."""
    splits = manifest["splits"]
    names = list(splits)
    lines = [f"corpus {manifest['corpus']}  (schema v{manifest['schema_version']})",
             f"{'':<32}" + "".join(f"{s:>12}" for s in names),
             f"{'dialogues':<32}" + "".join(f"{splits[s]['dialogues']:>12,}" for s in names),
             f"{'utterances':<32}" + "".join(f"{splits[s]['utterances']:>12,}" for s in names)]
    for task, labels in manifest["tasks"].items():
        for label in labels:
            lines.append(f"{task + ' / ' + label:<32}" + "".join(
                f"{splits[s]['class_counts'][task][label]:>12,}" for s in names))
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    with cli.user_errors("mmjax.prepare"):
        if FLAGS.corpus not in CORPORA:
            raise ConfigError(f"--corpus={FLAGS.corpus!r} is not one of {sorted(CORPORA)}")
        print(f"writing {FLAGS.corpus} records to {FLAGS.output}", file=sys.stderr)
        manifest = CORPORA[FLAGS.corpus].write(FLAGS.output, parse_counts(FLAGS.dialogues), FLAGS.seed)
        print(summary_table(manifest))


if __name__ == "__main__":
    app.run(main, flags_parser=cli.flags_parser("mmjax.prepare"))
