"""The linear peer (``mmjax.linear_peer``): TF-IDF features of each utterance's text, one linear model per task::

    python -m mmjax.baseline --data_dir=data_cache/cmma --output=runs/cmma/linear [--split=test]
    python -m mmjax.baseline --data_dir=data_cache/meld --output=runs/meld/linear --tasks=emotion \\
        --split=validation --analyzer=latin

Reads a prepared records directory (``python -m mmjax.prepare``) and, per task, the utterances
labelled for it: the utterance's own text only, no dialogue context, no audio or video (the
classic text peer). Features (fitted on the training split only): ``--analyzer=cjk`` character
1-3-grams; ``latin`` lowercased word 1-2-grams plus char_wb 2-5-grams; ``auto`` (default) cjk
when most non-space characters of the training texts are CJK ideographs, else latin. All TF-IDF
with sublinear tf. Per task, ``LogisticRegression(class_weight="balanced")`` (lbfgs; multi-label:
one per label; regression: ``Ridge(alpha=1/C)`` on the value scaled to [-1, 1]) is fitted on train
for every C of ``C_GRID``; the C with the best validation headline score (macro-F1; regression:
Pearson r) is kept (ties: the smaller C), without refitting. Only then, and only with ``--split=test``, is the test split read.
(``--split=validation`` reports on the split C was chosen on, so its scores are optimistic.)

Writes ``<output>/eval_<split>.json`` in ``python -m mmjax.evaluate``'s format (per task the
scores of its kind, support, loss = mean negative log-likelihood of the true class (multi-label:
binary cross-entropy; regression: L1 on [-1, 1]), the training baseline, labels, confusion matrix
and per-class scores where they apply; no by-speaker or by-modality breakdowns) plus "model",
"analyzer" and "selection" (per task the chosen C, the score that chose it and its validation
value), and one confusion-matrix PNG per classification task; prints evaluate's table.
"""

from __future__ import annotations

import logging
import os
import time

from absl import app, flags

from mmjax import cli, evaluation
from mmjax.linear_peer import ANALYZERS, MODEL, run

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)


def _define_flags():
    """Defined only when the command runs, so that command modules can be imported together."""
    flags.DEFINE_string("data_dir", None, "Prepared records directory (python -m mmjax.prepare).")
    flags.DEFINE_string("output", None, "Directory to write eval_<split>.json and the confusion PNGs into.")
    flags.DEFINE_list("tasks", None, "Tasks to fit; default: every task of the manifest the training split labels.")
    flags.DEFINE_string("split", "test", "Split to report on: validation or test.")
    flags.DEFINE_string("analyzer", "auto", f"Text features: one of {list(ANALYZERS)}.")
    flags.mark_flags_as_required(["data_dir", "output"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f, start = flags.FLAGS, time.time()
    with cli.user_errors("mmjax.baseline"):
        out = run(f.data_dir, f.output, f.tasks, f.split, f.analyzer)
    print(evaluation.format_table(out["tasks"], f"{f.data_dir}: {f.split} split, {MODEL} ({out['analyzer']})"))
    for t, s in out["selection"].items():
        print(f"{t:<20}C={s['C']:<6g} validation {s['score']} {s['validation_score']:.4f}")
    _log.info("wrote %s in %.1f s", os.path.join(f.output, f"eval_{f.split}.json"), time.time() - start)


def command():
    """The ``mmjax-baseline`` console script (``python -m mmjax.baseline``)."""
    cli.run("mmjax.baseline", _define_flags, main)


if __name__ == "__main__":
    command()
