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

import logging

from absl import app, flags

from mmjax import cli, preparation
from mmjax.data.corpora import common, mustard
from mmjax.preparation import CORPORA, DEFAULT_DIALOGUES

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)


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
                       "held out for validation; JSONL without validation.jsonl: fraction of the training "
                       "dialogues.")
    flags.DEFINE_integer("max_tokens", 40, "The summary says how many utterances a config.data.max_tokens of "
                         "this many tokens would cut (the records keep every token).")
    flags.DEFINE_integer("seed", 0, "Seed of the synthetic generator, of MUStARD's splits and of a JSONL corpus's "
                         "held-out validation dialogues.")
    flags.DEFINE_list("dialogues", [f"{split}:{n}" for split, n in DEFAULT_DIALOGUES.items()],
                      "Synthetic corpus: dialogues per split, as split:count.")
    flags.mark_flags_as_required(["output"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    with cli.user_errors("mmjax.prepare"):
        _log.info("writing %s records to %s", f.corpus, f.output)
        options = common.Options(skip_bad=f.skip_bad, encoding=f.encoding, protocol=f.protocol, fold=f.fold,
                                 seed=f.seed, validation_fraction=f.validation_fraction,
                                 allow_outside_paths=f.allow_outside_paths)
        manifest = preparation.prepare(f.corpus, f.output, input_path=f.input, options=options, tokenizer=f.tokenizer,
                                       text_states=f.text_states, audio=f.audio, visual=f.visual, name=f.name,
                                       dialogues=f.dialogues)
        print(preparation.summary_table(manifest, f.max_tokens))


def command():
    """The ``mmjax-prepare`` console script (``python -m mmjax.prepare``)."""
    cli.run("mmjax.prepare", _define_flags, main)


if __name__ == "__main__":
    command()
