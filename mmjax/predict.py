"""Predict every utterance of new dialogues with a trained run::

    python -m mmjax.predict --workdir=runs/soft_share --input=dialogues.jsonl --output=preds.jsonl [--step=best|N]
    python -m mmjax.predict --workdir=runs/soft_s{seed} --seeds=0,1,2 --input=dialogues.jsonl --output=preds.jsonl

The input is the JSONL format ``prepare --corpus=jsonl`` trains on, one utterance per line, labels
optional (spec: ``mmjax/data/dialogue_jsonl.py``); the output one line
per utterance with, for every task, the predicted label and the class probabilities (format:
``mmjax/prediction.py``). The run's config and tokenizer come from its workdir (``--config``
replaces the config); the records it was trained on are not needed. With ``--seeds``, ``{seed}``
in ``--workdir`` is replaced by each seed and the runs predict as one ensemble
(``mmjax.ensemble``: their probabilities or values averaged, each run at ``--step``).
"""

from __future__ import annotations

import logging

import jax
from absl import app, flags
from ml_collections import config_flags

from mmjax import cli, prediction, restored_run

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)


def _define_flags():
    """Defined only when the command runs, so that command modules can be imported together."""
    config_flags.DEFINE_config_file("config", None, "Config file; default: the one the workdir recorded.",
                                    lock_config=True)
    flags.DEFINE_string("workdir", None, "The run's workdir (holds checkpoints/ and config.json).")
    flags.DEFINE_string("input", None, "JSONL file: one utterance per line, as prepare --corpus=jsonl reads.")
    flags.DEFINE_string("output", None, "JSONL file to write: one line per utterance.")
    flags.DEFINE_string("step", "latest", "Checkpoint to use: latest, best (by validation score) or a step.")
    flags.DEFINE_list("seeds", None, "Seeds that replace {seed} in --workdir: predict with the ensemble of those "
                                     "runs (their probabilities or values averaged).")
    flags.DEFINE_bool("allow_outside_paths", False, "Feature paths in the input may leave its directory "
                      "(absolute, .., symlinks); by default they are refused.")
    flags.mark_flags_as_required(["workdir", "input", "output"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.initialize()
    f = flags.FLAGS
    with cli.user_errors("mmjax.predict"):
        workdirs = f.workdir if f.seeds is None else restored_run.seed_workdirs(f.workdir, f.seeds)
        count = prediction.predict(workdirs, f.input, f.output, f.step, f.config,
                                   allow_outside_paths=f.allow_outside_paths)
        if jax.process_index() == 0:
            _log.info("wrote predictions for %d utterances to %s", count, f.output)


def command():
    """The ``mmjax-predict`` console script (``python -m mmjax.predict``)."""
    cli.run("mmjax.predict", _define_flags, main)


if __name__ == "__main__":
    command()
