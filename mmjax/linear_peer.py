"""The linear peer of every results table: TF-IDF features of each utterance's text and one
class-balanced logistic regression per task, its C chosen on the validation split
(``python -m mmjax.baseline``, whose docstring gives the details and the report written)."""

from __future__ import annotations

import logging
import os

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion

from mmjax import evaluation, metrics, report as report_lib
from mmjax.data import records
from mmjax.errors import ConfigError, RecordError
from mmjax.tasks import corpus_tasks

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)

MODEL = "tfidf_logistic_regression"
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
ANALYZERS = ("auto", "cjk", "latin")
SPLITS = ("validation", records.TEST_SPLIT)
NLL_FLOOR = 1e-12  # probability floor for the loss: a class absent from train gets probability 0


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
    _log.info("%s: %d labelled training utterances, analyzer %s", data_dir, len(fit_texts), analyzer)
    vectorizer = make_vectorizer(analyzer).fit(fit_texts)
    x_train, x_val = vectorizer.transform(train_texts), vectorizer.transform(val_texts)
    models, selection = {}, {}
    for t in tasks:
        tr, va = train_y[t] >= 0, val_y[t] >= 0
        for c in C_GRID:
            model = LogisticRegression(C=c, class_weight="balanced", solver="lbfgs", max_iter=5000)
            model.fit(x_train[tr], train_y[t][tr])
            predicted = predict(model, x_val[va], declared[t].num_classes).argmax(1)
            score = metrics.scores(metrics.confusion_from_predictions(
                val_y[t][va], predicted, declared[t].num_classes))["macro_f1"]
            _log.info("fitted %s, C=%g: validation macro_f1 %.4f", t, c, score)
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
