"""The linear peer (mmjax.linear_peer, run by mmjax.baseline): evaluate's report format, C chosen on validation, analyzer
detection, and bad input reported as one line."""

import json
import os
import shutil

import numpy as np
import pytest

from mmjax import linear_peer, report as report_lib
from mmjax.data import records, schema
from mmjax.errors import ConfigError, ForbiddenSplitError, RecordError
from mmjax.tasks import MULTILABEL, REGRESSION, TASKS, Task
from tests.tiny import run_module

# evaluation.run's per-task keys without details (by_speaker / by_modalities)
EVALUATE_KEYS = {"kind", "accuracy", "macro_f1", "weighted_f1", "support", "loss", "majority_baseline", "labels",
                 "confusion", "per_class"}
KEYWORDS = {"awful": 0, "fine": 1, "great": 2}  # sentiment is the keyword's class
FILLER = "the a movie today we they said really was this that show".split()


def _dialogues(split: str, count: int) -> list[schema.Dialogue]:
    rng = np.random.default_rng({"train": 0, "validation": 1, "test": 2}[split])
    out = []
    for i in range(count):
        words = [list(rng.choice(FILLER, 4)) for _ in range(4)]
        keys = [list(KEYWORDS)[(i + t) % 3] for t in range(4)]
        texts = [" ".join(w[:2] + [k] + w[2:]) for w, k in zip(words, keys)]
        sentiment = np.array([KEYWORDS[k] for k in keys], np.int32)
        sentiment[0] = -1  # a context turn: unlabelled, not fitted or scored
        out.append(schema.Dialogue(
            f"{split}{i}", [f"{split}{i}_{t}" for t in range(4)], ["A", "B", "A", "B"], texts,
            [np.ones(len(s.split()), np.int32) for s in texts], [None] * 4, [None] * 4,
            {"sentiment": sentiment, "sarcasm": np.full(4, -1, np.int32)}))
    return out


@pytest.fixture(scope="module")
def keyword_records(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("baseline") / "keywords")
    records.write_corpus(path, "keywords", {s: _dialogues(s, n) for s, n in
                                            (("train", 24), ("validation", 6), ("test", 6))},
                         tasks=[TASKS["sentiment"], TASKS["sarcasm"]], audio_dim=0, visual_dim=0, text={"kind": "word"})
    return path


def test_baseline_learns_the_keyword_and_writes_evaluates_report(keyword_records, tmp_path):
    # Without the test files: choosing C and reporting on validation never reads the test split.
    no_test = str(tmp_path / "no_test")
    shutil.copytree(keyword_records, no_test, ignore=lambda _, names: [n for n in names if n.startswith("test")])
    out = linear_peer.run(no_test, str(tmp_path / "val"), split="validation")
    assert list(out["tasks"]) == ["sentiment"]  # sarcasm: in the manifest, labelled nowhere in train
    assert out["analyzer"] == "latin" and out["model"] == "tfidf_logistic_regression"
    assert out["selection"]["sentiment"] == {"C": linear_peer.C_GRID[0], "score": "macro_f1",
                                             "validation_score": 1.0}  # ties: smallest C
    assert out["tasks"]["sentiment"]["macro_f1"] == 1.0

    out = linear_peer.run(keyword_records, str(tmp_path / "test"), split="test")
    written = json.loads((tmp_path / "test" / "eval_test.json").read_text())
    assert written == json.loads(json.dumps(out))
    assert {"split", "model", "analyzer", "selection", "tasks"} <= set(written) and written["split"] == "test"
    r = written["tasks"]["sentiment"]
    assert set(r) == EVALUATE_KEYS
    assert r["macro_f1"] == r["accuracy"] == 1.0 and r["support"] == 6 * 3  # the first turns are unlabelled
    assert r["labels"] == ["negative", "neutral", "positive"] and np.trace(r["confusion"]) == 18
    assert set(r["per_class"]["neutral"]) == {"precision", "recall", "f1", "support", "predicted"}
    assert set(r["majority_baseline"]) == {"accuracy", "macro_f1", "weighted_f1"} and 0 < r["loss"] < np.log(3)
    assert os.path.isfile(tmp_path / "test" / written["confusion_png"]["sentiment"])
    # The seeds aggregation of mmjax.evaluate reads these reports as it reads its own.
    assert report_lib.aggregate([written["tasks"]] * 2)["tasks"]["sentiment"]["macro_f1"]["mean"] == 1.0
    # Only final evaluation opens the test split; the baseline enters the guard itself.
    with pytest.raises(ForbiddenSplitError):
        records.DialogueSource(keyword_records, "test")


def test_regression_and_multilabel_tasks_get_ridge_and_one_classifier_per_label(tmp_path):
    intensity = Task("intensity", kind=REGRESSION, value_range=(-3.0, 3.0))
    topics = Task("topics", ("bad", "good"), kind=MULTILABEL)

    def with_kinds(dialogues):
        for d in dialogues:
            sentiment = d.labels.pop("sentiment")
            d.labels["intensity"] = np.where(sentiment >= 0, 2.0 * sentiment - 2, np.nan).astype(np.float32)
            d.labels["topics"] = np.stack([sentiment == 0, sentiment == 2], -1).astype(np.int32)
            d.labels["topics"][sentiment < 0] = -1
        return dialogues

    path = str(tmp_path / "kinds")
    records.write_corpus(path, "keywords", {s: with_kinds(_dialogues(s, n)) for s, n in
                                            (("train", 24), ("validation", 6), ("test", 6))},
                         tasks=[intensity, topics], audio_dim=0, visual_dim=0, text={"kind": "word"})
    out = linear_peer.run(path, str(tmp_path / "out"), split="test")
    r, m = out["tasks"]["intensity"], out["tasks"]["topics"]
    assert out["selection"]["intensity"]["score"] == "corr" and out["selection"]["topics"]["score"] == "macro_f1"
    assert r["kind"] == "regression" and r["corr"] > 0.99 and r["mae"] < 0.3 and r["support"] == 18
    assert r["acc7"] > 0.9 and r["mean_baseline"]["mse"] == pytest.approx(8 / 3, rel=0.01)  # the values -2, 0, 2
    assert m["kind"] == "multilabel" and m["macro_f1"] == m["micro_f1"] == m["exact_match"] == 1.0
    assert m["majority_baseline"]["macro_f1"] == 0.0  # each label applies to a third: never predicted
    assert set(m["per_label"]) == {"bad", "good"} and out["confusion_png"] == {}


def test_analyzer_detection():
    assert linear_peer.detect_analyzer(["我错了", "从今以后我要养成独自去超市的好习惯!", "OK 好的"]) == "cjk"
    assert linear_peer.detect_analyzer(["You must've had your hands full.", "That I did. 好"]) == "latin"
    assert linear_peer.detect_analyzer(["", "   "]) == "latin"


def test_bad_input_is_one_error(keyword_records, tmp_path):
    with pytest.raises(ConfigError, match=r"task 'humor' is not in .*its manifest has \['sentiment', 'sarcasm'\]"):
        linear_peer.run(keyword_records, str(tmp_path), tasks=["humor"])
    with pytest.raises(ConfigError, match="task 'mood' is not in"):
        linear_peer.run(keyword_records, str(tmp_path), tasks=["mood"])
    with pytest.raises(RecordError, match="task 'sarcasm' needs two distinct labels"):
        linear_peer.run(keyword_records, str(tmp_path), tasks=["sarcasm"], split="validation")
    with pytest.raises(RecordError, match="manifest.json is missing"):
        linear_peer.run(str(tmp_path), str(tmp_path))
    no_test = str(tmp_path / "no_test")
    records.write_corpus(no_test, "keywords", {s: _dialogues(s, 3) for s in ("train", "validation")},
                         tasks=[TASKS["sentiment"]], audio_dim=0, visual_dim=0, text={"kind": "word"})
    with pytest.raises(RecordError, match=r"has no split 'test'; it has \['train', 'validation'\]"):
        linear_peer.run(no_test, str(tmp_path))
    with pytest.raises(ConfigError, match="--split='train'"):
        linear_peer.run(keyword_records, str(tmp_path), split="train")
    code, out = run_module("mmjax.baseline", f"--data_dir={keyword_records}", f"--output={tmp_path}/out",
                           "--tasks=humor")
    assert code == 2 and "Traceback" not in out, out
    assert f"mmjax.baseline: error: task 'humor' is not in '{keyword_records}'" in out
    assert not os.path.exists(tmp_path / "out")
