import json
import math
import os
import types

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


def test_the_workdirs_config_reads_the_records_training_read_from_any_directory(tmp_path, monkeypatch):
    (tmp_path / "project" / "data_cache" / "corpus").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    workdir = str(tmp_path / "project" / "runs" / "x")
    os.makedirs(workdir)
    monkeypatch.chdir(tmp_path / "project")  # training ran here, data.dir relative to it
    config = soft_share.get_config()
    config.data.dir = "data_cache/corpus"
    saved_run.save_run(workdir, config, {"corpus": "synthetic"})
    recorded = saved_run.load_manifest(workdir)
    assert recorded == {"corpus": "synthetic", "records_dir": str(tmp_path / "project" / "data_cache" / "corpus")}
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert saved_run.with_recorded_records(saved_run.load_config(workdir), recorded).data.dir == recorded["records_dir"]
    # Gone since, or given absolute: the config's own data.dir.
    (tmp_path / "project" / "data_cache" / "corpus").rmdir()
    assert saved_run.with_recorded_records(saved_run.load_config(workdir), recorded).data.dir == "data_cache/corpus"
    config.data.dir = "/records/elsewhere"
    assert saved_run.with_recorded_records(config, recorded).data.dir == "/records/elsewhere"
    assert saved_run.with_recorded_records(config, None).data.dir == "/records/elsewhere"  # older runs


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


@pytest.fixture
def bucket(tmp_path):
    """A fake ``gs://bucket`` served from ``tmp_path`` through epath's own test backend: the
    workdir files of a bucket run go through ``etils.epath`` (a plain ``open`` would fail)."""
    import contextlib

    from etils import epath

    def local(path):
        return str(path).replace("gs://bucket", str(tmp_path), 1)

    def routed(fn, path, *args, **kwargs):
        return fn(local(path), *[local(a) if str(a).startswith("gs://") else a for a in args], **kwargs)

    names = ("open", "copy", "rename", "exists", "glob", "walk", "isdir", "listdir", "makedirs", "mkdir", "remove",
             "replace", "rmtree", "stat")
    with epath.testing.mock_epath(**dict.fromkeys(names, routed)), contextlib.chdir(tmp_path):
        yield tmp_path


def test_a_bucket_workdir_records_its_run_writes_its_metrics_log_and_takes_no_lock(bucket, caplog, monkeypatch):
    from mmjax import metric_log, trainer, workdir_lock
    from mmjax.errors import MmjaxError

    workdir = "gs://bucket/runs/a"
    trainer.make_workdir(workdir)
    with pytest.raises(MmjaxError, match=r"'gs://bucket/runs/a': TensorBoard events in a bucket need "
                                         r"google-cloud-storage \(pip install 'mmjax\[cloud\]'\)"):
        metric_log.event_writer(workdir, 0)  # where it is not installed, as here
    monkeypatch.setattr(metric_log, "event_writer", lambda *_: types.SimpleNamespace(
        add_scalar=lambda *a: None, flush=lambda: None, close=lambda: None))
    config = soft_share.get_config()
    config.data.dir = "gs://bucket/records"
    saved_run.save_run(workdir, config, {"corpus": "synthetic"})
    assert saved_run.load_config(workdir).learning_rate == config.learning_rate
    assert saved_run.load_manifest(workdir) == {"corpus": "synthetic", "records_dir": "gs://bucket/records"}
    assert (bucket / "runs" / "a" / saved_run.CONFIG).is_file()  # where the bucket keeps it
    writer = metric_log.MetricWriter(workdir, enabled=True)
    writer.write("train", 1, {"loss": 1.0})
    writer.write("train", 2, {"loss": 0.5})
    writer.close()
    resumed = metric_log.MetricWriter(workdir, enabled=True, start=1)  # a resumed run drops the lines after its step
    resumed.write("train", 2, {"loss": 0.4})
    resumed.close()
    lines = (bucket / "runs" / "a" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["loss"] for line in lines] == [1.0, 0.4]
    with workdir_lock.hold(workdir):
        assert not (bucket / "runs" / "a" / workdir_lock.LOCK).exists()
    assert "no lock on gs://bucket/runs/a" in caplog.text
