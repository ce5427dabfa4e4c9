"""What training logs (mmjax.metric_log): the metrics.jsonl a resumed run rewrites and the logged rate."""

import json

import numpy as np

from mmjax import metric_log


def test_a_resumed_run_drops_the_log_lines_of_the_steps_it_logs_again(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": step, "split": split, "loss": 1.0}) + "\n"
                            for step in range(1, 6) for split in ("train", "validation")) + '{"step": 6, "spl\0\0')
    writer = metric_log.MetricWriter(str(tmp_path), enabled=True, start=3)  # resumed from step 3's checkpoint
    writer.write("train", 4, {"loss": 0.5})
    writer.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in rows] == [(1, "train"), (1, "validation"), (2, "train"),
                                                       (2, "validation"), (3, "train"), (3, "validation"),
                                                       (4, "train")]
    assert rows[-1]["loss"] == 0.5


def test_logged_steps_per_second_leave_validation_and_checkpoint_time_out():
    log = metric_log.IntervalMetrics(first_step=1)
    step = {"loss": np.float32(1.0), "grad_norm": np.float32(0.5), "tie_penalty": np.float32(0.0),
            "sarcasm/loss_sum": np.float32(2.0), "sarcasm/count": np.float32(4.0), "sarcasm/correct": np.float32(3.0)}
    for _ in range(4):
        log.add(step)
    log.started -= 10.0  # the interval began 10 s ago ...
    log.exclude_pause(8.0)  # ... of which 8 s went to validation and a checkpoint
    summary = log.summary(["sarcasm"])
    assert 1.9 < summary["steps_per_second"] <= 2.0  # 4 steps in the 2 s of training
    assert summary["sarcasm/loss"] == 0.5 and summary["sarcasm/accuracy"] == 0.75
