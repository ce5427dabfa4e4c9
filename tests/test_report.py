import numpy as np
import pytest

from mmjax import report


def _run(macro_f1: float, joy_f1: float) -> dict:
    scores = {"accuracy": 0.5, "macro_f1": macro_f1, "weighted_f1": 0.4, "loss": 1.0, "support": 10}
    per_class = {"neutral": {"precision": 0.5, "recall": 0.5, "f1": 0.5},
                 "joy": {"precision": joy_f1, "recall": joy_f1, "f1": joy_f1}}
    return {"emotion": {**scores, "per_class": per_class},
            "sarcasm": {**scores, "macro_f1": 1.0, "per_class": per_class}}


def test_aggregate_gives_mean_and_sample_std():
    agg = report.aggregate([_run(0.5, 0.0), _run(0.7, 0.3), _run(0.6, 0.6)])
    assert agg["tasks"]["emotion"]["macro_f1"]["mean"] == pytest.approx(0.6)
    assert agg["tasks"]["emotion"]["macro_f1"]["std"] == pytest.approx(0.1)  # sqrt((0.01 + 0.01 + 0) / 2)
    assert agg["tasks"]["emotion"]["per_class"]["joy"]["f1"] == pytest.approx({"mean": 0.3, "std": 0.3})
    assert agg["tasks"]["sarcasm"]["macro_f1"] == {"mean": 1.0, "std": 0.0}
    assert agg["score"]["mean"] == pytest.approx(np.mean([0.75, 0.85, 0.8]))
    assert agg["tasks"]["emotion"]["support"] == [10, 10, 10]
    assert "emotion" in report.format_aggregate(agg, "title")
    with pytest.raises(ValueError, match="at least 2"):
        report.aggregate([_run(0.5, 0.0)])


def test_each_seed_has_its_line_with_the_step_it_evaluated():
    scores = {"sarcasm": {"accuracy": 0.9, "macro_f1": 0.6, "weighted_f1": 0.8, "loss": 0.3},
              "humor": {"accuracy": 0.7, "macro_f1": 0.4, "weighted_f1": 0.6, "loss": 0.5}}
    run = report.run_scores("0", "runs/s0", 1200, scores)
    assert run["step"] == 1200 and run["score"] == pytest.approx(0.5) and run["tasks"]["humor"]["loss"] == 0.5
    table = report.format_runs([run, report.run_scores("1", "runs/s1", 900, scores)], "title")
    assert table.splitlines()[2].split() == ["0", "1200", "0.5000", "0.6000", "0.4000"]
    assert table.splitlines()[3].split()[:2] == ["1", "900"]
    per_task = report.run_scores("2", "runs/s2", {"sarcasm": 300, "humor": 900}, scores)
    line = report.format_runs([run, per_task], "title").splitlines()[3]
    assert line.split() == ["2", "per", "task", "0.5000", "0.6000", "0.4000"]  # each task's step: in the JSON
    assert report.step_label(per_task["step"]) == "steps sarcasm 300, humor 900"
    assert report.step_label(1200) == "step 1200"
