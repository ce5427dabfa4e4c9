import json
import math

import pytest

from configs import soft_share
from mmjax import saved_run
from mmjax.errors import ConfigError


def test_write_json_is_strict_json_with_nan_as_null(tmp_path):
    path = str(tmp_path / "eval.json")
    saved_run.write_json(path, {"humor": {"macro_f1": float("nan"), "support": 0, "scores": [1.5, math.inf]},
                                "labels": ("none", "humor")})

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    with open(path, encoding="utf-8") as f:
        value = json.load(f, parse_constant=refuse)
    assert value == {"humor": {"macro_f1": None, "support": 0, "scores": [1.5, None]}, "labels": ["none", "humor"]}
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]


def test_resuming_with_another_config_is_refused_unless_only_resumable_keys_changed(tmp_path):
    workdir = str(tmp_path)
    config = soft_share.get_config()
    saved_run.save_run(workdir, config, {"corpus": "synthetic"})
    longer = soft_share.get_config()
    longer.num_train_steps, longer.eval_every_steps, longer.data.read_threads = 5000, 50, 4
    saved_run.check_resume_config(workdir, longer)  # how long and how often: allowed

    changed = soft_share.get_config()
    changed.learning_rate, changed.model.sharing, changed.data.worker_count = 0.1, "hard", 2
    with pytest.raises(ConfigError, match=r"data\.worker_count=2 \(recorded 0\); learning_rate=0\.1 \(recorded "
                                          r"0\.002\); model\.sharing='hard' \(recorded 'soft'\)\. Train in a new"):
        saved_run.check_resume_config(workdir, changed)

    # A key the recorded run predates (added to mmjax since) is not compared.
    with open(tmp_path / saved_run.CONFIG) as f:
        recorded = json.load(f)
    del recorded["ema_decay"]
    saved_run.write_json(str(tmp_path / saved_run.CONFIG), recorded)
    newer = soft_share.get_config()
    newer.ema_decay = 0.99
    saved_run.check_resume_config(workdir, newer)
