"""The linear peer of every results table: TF-IDF features of each utterance's text and one
linear model per task, its regularisation chosen on the validation split (``python -m
mmjax.baseline``, whose docstring gives the details and the report written): class-balanced
logistic regression (classification), one per label (multi-label), ridge regression on the
value scaled to [-1, 1] over the task's range (regression)."""

from __future__ import annotations

import logging
import os

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion

from mmjax import evaluation, metrics, report as report_lib
from mmjax.data import records
from mmjax.errors import ConfigError, RecordError
from mmjax.tasks import MULTILABEL, REGRESSION, Task, corpus_tasks

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)

MODEL = "tfidf_logistic_regression"  # ridge regression for regression tasks
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)  # inverse regularisation; ridge's alpha is 1 / C
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


def read_split(data_dir: str, split: str, manifest, tasks: dict[str, Task]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every utterance's text and, per task, its stored label (missing where unlabelled) in record order."""
    source = records.DialogueSource(data_dir, split, manifest)
    texts, labels = [], {t: [task.unlabelled(0)] for t, task in tasks.items()}
    for i in range(len(source)):
        d = source[i]
        texts += d.texts
        for t, task in tasks.items():
            labels[t].append(d.labels.get(t, task.unlabelled(d.num_turns)))
    return texts, {t: np.concatenate(v) for t, v in labels.items()}


def labelled_texts(tasks: dict[str, Task], texts: list[str], labels: dict[str, np.ndarray]) -> list[str]:
    """The ``texts`` labelled for at least one of ``tasks``: what the vectorizer is fitted on."""
    labelled = np.any([task.is_labelled(labels[t]) for t, task in tasks.items()], axis=0)
    return [s for s, keep in zip(texts, labelled) if keep]


def fitted_vectorizer(tasks: dict[str, Task], texts: list[str], labels: dict[str, np.ndarray],
                      analyzer: str = "auto"):
    """The peer's vectorizer fitted on the training ``texts`` labelled for some task, and its
    analyzer (``"auto"``: detected on those texts)."""
    fit_texts = labelled_texts(tasks, texts, labels)
    analyzer = detect_analyzer(fit_texts) if analyzer == "auto" else analyzer
    _log.info("%d labelled training utterances, analyzer %s", len(fit_texts), analyzer)
    return make_vectorizer(analyzer).fit(fit_texts), analyzer


def fit(task: Task, c: float, x, y: np.ndarray):
    """The task's linear model at inverse regularisation ``c`` on labelled features ``x``, labels ``y``."""
    if task.kind == REGRESSION:
        return Ridge(alpha=1.0 / c).fit(x, task.to_unit(y))
    classifier = LogisticRegression(C=c, class_weight="balanced", solver="lbfgs", max_iter=5000)
    if task.kind == MULTILABEL:
        return OneVsRestClassifier(classifier).fit(x, (y > 0).astype(np.int32))
    return classifier.fit(x, y)


def outputs(task: Task, model, x) -> np.ndarray:
    """float64 [N, task.outputs]: class probabilities (a class absent from train gets 0), each
    label's probability, or the value (clipped to the task's range)."""
    if task.kind == REGRESSION:
        return task.from_unit(model.predict(x))[:, None]
    if task.kind == MULTILABEL:
        return model.predict_proba(x)
    proba = np.zeros((x.shape[0], task.num_classes))
    proba[:, model.classes_] = model.predict_proba(x)
    return proba


def decisions(task: Task, out: np.ndarray) -> np.ndarray:
    """``metrics.predict``'s decisions from ``outputs``: the class, each label's 0/1, or the value."""
    if task.kind == REGRESSION:
        return out[:, 0]
    if task.kind == MULTILABEL:
        return (out > 0.5).astype(np.int32)
    return out.argmax(1)


def _predicted_and_loss(task: Task, out: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """``decisions`` from ``outputs``, and the mean loss: negative log-likelihood of the true
    class, the labels' mean binary cross-entropy, or L1 on [-1, 1]."""
    n = max(len(y), 1)
    if task.kind == REGRESSION:
        loss = np.abs(task.to_unit(out[:, 0]) - task.to_unit(y)).sum() / n
    else:
        p = np.clip(out, NLL_FLOOR, 1 - NLL_FLOOR)
        if task.kind == MULTILABEL:
            loss = -np.where(y > 0, np.log(p), np.log(1 - p)).mean(1).sum() / n
        else:
            loss = -np.log(p[np.arange(len(y)), y]).sum() / n
    return decisions(task, out), float(loss)


def grid(task: Task, x_train, y_train: np.ndarray, x_val):
    """Yields (C, model, its ``decisions`` on ``x_val``) for each C of ``C_GRID``, each model
    fitted on labelled features ``x_train`` and labels ``y_train``."""
    for c in C_GRID:
        model = fit(task, c, x_train, y_train)
        yield c, model, decisions(task, outputs(task, model, x_val))


def select(task: Task, x_train, y_train: np.ndarray, x_val, y_val: np.ndarray):
    """The task's model at the C of ``C_GRID`` with the best validation headline score (ties: the
    smallest C), fitted on labelled features and labels, and {"C", "score", "validation_score"}."""
    score_name = metrics.HEADLINE[task.kind]
    best = None
    for c, model, predicted in grid(task, x_train, y_train, x_val):
        score = metrics.host_scores(task, predicted, y_val)[score_name]
        _log.info("fitted %s, C=%g: validation %s %.4f", task.name, c, score_name, score)
        if best is None or score > best[1]["validation_score"]:
            best = model, {"C": c, "score": score_name, "validation_score": score}
    return best


def task_report(task: Task, model, x, y: np.ndarray, train_split) -> dict:
    """``mmjax.evaluation.task_report`` of ``model`` on labelled features ``x``, labels ``y``;
    ``train_split``: the training split's manifest entry."""
    predicted, loss = _predicted_and_loss(task, outputs(task, model, x), y)
    return evaluation.task_report(task, metrics.host_statistics(task, predicted, y), loss, train_split)


def _fittable(task: Task, y: np.ndarray) -> bool:
    y = y[task.is_labelled(y)]
    if task.kind == MULTILABEL:
        return len(y) > 0 and bool((y > 0).any(0).any() and (y == 0).any(0).any())
    return len(np.unique(y)) >= 2


def run(data_dir: str, output: str, tasks=None, split: str = "test", analyzer: str = "auto") -> dict:
    """Fits, selects C on validation, reports on ``split``; returns the written JSON's content."""
    if split not in SPLITS:
        raise ConfigError(f"--split={split!r}: expected one of {list(SPLITS)}")
    if analyzer not in ANALYZERS:
        raise ConfigError(f"--analyzer={analyzer!r}: expected one of {list(ANALYZERS)}")
    manifest = records.load_manifest(data_dir)
    train_split = records.split_info(manifest, data_dir, "train")
    records.split_info(manifest, data_dir, split)
    declared = corpus_tasks(manifest)
    if not tasks:
        tasks = [t for t in manifest["tasks"] if records.labelled_count(train_split, t) > 0]
    for t in tasks:
        if t not in declared:
            raise ConfigError(f"task {t!r} is not in {data_dir!r}: its manifest has {list(declared)}")
    tasks = {t: declared[t] for t in tasks}
    train_texts, train_y = read_split(data_dir, "train", manifest, tasks)
    val_texts, val_y = read_split(data_dir, "validation", manifest, tasks)
    for t, task in tasks.items():
        if not _fittable(task, train_y[t]) or not task.is_labelled(val_y[t]).any():
            raise RecordError(f"{data_dir!r}: task {t!r} needs two distinct labels (values) in train and labels in "
                              "validation to fit and select a linear model")
    vectorizer, analyzer = fitted_vectorizer(tasks, train_texts, train_y, analyzer)
    x_train, x_val = vectorizer.transform(train_texts), vectorizer.transform(val_texts)
    models, selection = {}, {}
    for t, task in tasks.items():
        tr, va = task.is_labelled(train_y[t]), task.is_labelled(val_y[t])
        models[t], selection[t] = select(task, x_train[tr], train_y[t][tr], x_val[va], val_y[t][va])
    if split == records.TEST_SPLIT:  # read once, after every C is chosen
        with records.reading_test_split():
            eval_texts, eval_y = read_split(data_dir, split, manifest, tasks)
        x_eval = vectorizer.transform(eval_texts)
    else:
        x_eval, eval_y = x_val, val_y
    report = {}
    for t, task in tasks.items():
        keep = task.is_labelled(eval_y[t])
        report[t] = task_report(task, models[t], x_eval[keep], eval_y[t][keep], train_split)
    os.makedirs(output, exist_ok=True)
    pngs = report_lib.write_confusion_pngs(report, output, split, MODEL)
    extra = {"split": split, "model": MODEL, "analyzer": analyzer, "data_dir": data_dir, "selection": selection,
             "confusion_png": pngs}
    evaluation.write_report(report, os.path.join(output, f"eval_{split}.json"), **extra)
    return {**extra, "tasks": report}
