"""The linear peer: TF-IDF features of each utterance's text, one logistic regression per task::

    python -m mmjax.baseline --data_dir=data_cache/cmma --output=runs/cmma/linear [--split=test]
    python -m mmjax.baseline --data_dir=data_cache/meld --output=runs/meld/linear --tasks=emotion \\
        --split=validation --analyzer=latin

Reads a prepared records directory (``python -m mmjax.prepare``) and, per task, the utterances
labelled for it: the utterance's own text only, no dialogue context, no audio or video (the
classic text peer). Features (fitted on the training split only): ``--analyzer=cjk`` character
1-3-grams; ``latin`` lowercased word 1-2-grams plus char_wb 2-5-grams; ``auto`` (default) cjk
when most non-space characters of the training texts are CJK ideographs, else latin. All TF-IDF
with sublinear tf. Per task, ``LogisticRegression(class_weight="balanced")`` (lbfgs) is fitted
on train for every C of ``C_GRID``; the C with the best validation macro-F1 is kept (ties: the
smaller C), without refitting. Only then, and only with ``--split=test``, is the test split read.
(``--split=validation`` reports on the split C was chosen on, so its scores are optimistic.)

Writes ``<output>/eval_<split>.json`` in ``python -m mmjax.evaluate``'s format (per task:
accuracy, macro- and weighted-F1, support, loss = mean negative log-likelihood of the true class,
training-majority baseline, labels, confusion matrix, per-class scores; no by-speaker or
by-modality breakdowns) plus "model", "analyzer" and "selection" (per task the chosen C and its
validation macro-F1), and one confusion-matrix PNG per task; prints evaluate's table.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from absl import app, flags
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from mmjax import cli, evaluation, metrics, report as report_lib
from mmjax.data import records
from mmjax.errors import ConfigError, RecordError
from mmjax.tasks import corpus_tasks

MODEL = "tfidf_logistic_regression"
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
ANALYZERS = ("auto", "cjk", "latin")
SPLITS = ("validation", records.TEST_SPLIT)
NLL_FLOOR = 1e-12  # probability floor for the loss: a class absent from train gets probability 0


def _define_flags():
    """Defined only when the command runs, so that command modules can be imported together."""
    flags.DEFINE_string("data_dir", None, "Prepared records directory (python -m mmjax.prepare).")
    flags.DEFINE_string("output", None, "Directory to write eval_<split>.json and the confusion PNGs into.")
    flags.DEFINE_list("tasks", None, "Tasks to fit; default: every task of the manifest the training split labels.")
    flags.DEFINE_string("split", "test", "Split to report on: validation or test.")
    flags.DEFINE_string("analyzer", "auto", f"Text features: one of {list(ANALYZERS)}.")
    flags.mark_flags_as_required(["data_dir", "output"])


def is_cjk(ch: str) -> bool:
    """A CJK unified ideograph (basic block, extension A, compatibility, extensions B+)."""
    o = ord(ch)
    return 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3134F


def detect_analyzer(texts) -> str:
    """"cjk" when most non-space characters of ``texts`` are CJK ideographs, else "latin"."""
    chars = [c for t in texts for c in t if not c.isspace()]
    return "cjk" if 2 * sum(map(is_cjk, chars)) > len(chars) else "latin"


def make_vectorizer(analyzer: str):
    if analyzer == "cjk":
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    return FeatureUnion([("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), lowercase=True,
                                                  sublinear_tf=True)),
                         ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True))])


def read_split(data_dir: str, split: str, manifest, tasks) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every utterance's text and, per task, its label (-1 unlabelled) in record order."""
    source = records.DialogueSource(data_dir, split, manifest)
    texts, labels = [], {t: [] for t in tasks}
    for i in range(len(source)):
        d = source[i]
        texts += d.texts
        for t in tasks:
            labels[t].append(d.labels.get(t, np.full(d.num_turns, -1, np.int32)))
    return texts, {t: np.concatenate(v) if v else np.zeros(0, np.int32) for t, v in labels.items()}


def predict(model, x, num_classes: int) -> np.ndarray:
    """float64 [N, num_classes] class probabilities; a class absent from train gets 0."""
    proba = np.zeros((x.shape[0], num_classes))
    proba[:, model.classes_] = model.predict_proba(x)
    return proba


def task_report(task: str, model, x, y: np.ndarray, train_class_counts) -> dict:
    """``mmjax.evaluation.task_report`` of ``model`` on features ``x``, labels ``y``; the loss is
    the mean negative log-likelihood of the true class."""
    proba = predict(model, x, len(train_class_counts))
    confusion = metrics.confusion_from_predictions(y, proba.argmax(1), proba.shape[1])
    loss = float(-np.log(np.maximum(proba[np.arange(len(y)), y], NLL_FLOOR)).sum() / max(len(y), 1))
    return evaluation.task_report(task, confusion, loss, train_class_counts)


def run(data_dir: str, output: str, tasks=None, split: str = "test", analyzer: str = "auto") -> dict:
    """Fits, selects C on validation, reports on ``split``; returns the written JSON's content."""
    if split not in SPLITS:
        raise ConfigError(f"--split={split!r}: expected one of {list(SPLITS)}")
    if analyzer not in ANALYZERS:
        raise ConfigError(f"--analyzer={analyzer!r}: expected one of {list(ANALYZERS)}")
    manifest = records.load_manifest(data_dir)
    train_counts = records.split_info(manifest, data_dir, "train")["class_counts"]
    records.split_info(manifest, data_dir, split)
    declared = corpus_tasks(manifest)
    if not tasks:
        tasks = [t for t in manifest["tasks"] if sum(train_counts.get(t, {}).values()) > 0]
    for t in tasks:
        if t not in declared:
            raise ConfigError(f"task {t!r} is not in {data_dir!r}: its manifest has {list(declared)}")
    train_texts, train_y = read_split(data_dir, "train", manifest, tasks)
    val_texts, val_y = read_split(data_dir, "validation", manifest, tasks)
    for t in tasks:
        if len(np.unique(train_y[t][train_y[t] >= 0])) < 2 or not (val_y[t] >= 0).any():
            raise RecordError(f"{data_dir!r}: task {t!r} needs two classes labelled in train and labels in "
                              "validation to fit and select a classifier")
    labelled = np.any([train_y[t] >= 0 for t in tasks], axis=0)
    fit_texts = [s for s, keep in zip(train_texts, labelled) if keep]
    analyzer = detect_analyzer(fit_texts) if analyzer == "auto" else analyzer
    print(f"{data_dir}: {len(fit_texts)} labelled training utterances, analyzer {analyzer}", file=sys.stderr)
    vectorizer = make_vectorizer(analyzer).fit(fit_texts)
    x_train, x_val = vectorizer.transform(train_texts), vectorizer.transform(val_texts)
    models, selection = {}, {}
    for t in tasks:
        tr, va = train_y[t] >= 0, val_y[t] >= 0
        for c in C_GRID:
            print(f"fitting {t}, C={c}: ", end="", file=sys.stderr, flush=True)
            model = LogisticRegression(C=c, class_weight="balanced", solver="lbfgs", max_iter=5000)
            model.fit(x_train[tr], train_y[t][tr])
            predicted = predict(model, x_val[va], declared[t].num_classes).argmax(1)
            score = metrics.scores(metrics.confusion_from_predictions(
                val_y[t][va], predicted, declared[t].num_classes))["macro_f1"]
            print(f"validation macro_f1 {score:.4f}", file=sys.stderr)
            if t not in selection or score > selection[t]["validation_macro_f1"]:
                models[t], selection[t] = model, {"C": c, "validation_macro_f1": score}
    if split == records.TEST_SPLIT:  # read once, after every C is chosen
        with records.reading_test_split():
            eval_texts, eval_y = read_split(data_dir, split, manifest, tasks)
        x_eval = vectorizer.transform(eval_texts)
    else:
        x_eval, eval_y = x_val, val_y
    report = {}
    for t in tasks:
        keep = eval_y[t] >= 0
        report[t] = task_report(t, models[t], x_eval[keep], eval_y[t][keep], train_counts[t])
    os.makedirs(output, exist_ok=True)
    pngs = report_lib.write_confusion_pngs(report, output, split, MODEL)
    extra = {"split": split, "model": MODEL, "analyzer": analyzer, "data_dir": data_dir, "selection": selection,
             "confusion_png": pngs}
    evaluation.write_report(report, os.path.join(output, f"eval_{split}.json"), **extra)
    return {**extra, "tasks": report}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f, start = flags.FLAGS, time.time()
    with cli.user_errors("mmjax.baseline"):
        out = run(f.data_dir, f.output, f.tasks, f.split, f.analyzer)
    print(evaluation.format_table(out["tasks"], f"{f.data_dir}: {f.split} split, {MODEL} ({out['analyzer']})"))
    for t, s in out["selection"].items():
        print(f"{t:<20}C={s['C']:<6g} validation macro_f1 {s['validation_macro_f1']:.4f}")
    print(f"wrote {os.path.join(f.output, f'eval_{f.split}.json')} in {time.time() - start:.1f}s", file=sys.stderr)


def command():
    """The ``mmjax-baseline`` console script (``python -m mmjax.baseline``)."""
    cli.run("mmjax.baseline", _define_flags, main)


if __name__ == "__main__":
    command()
