"""What a run's workdir records about how it was trained, so evaluate and predict need only it.

At the start of training process 0 writes

* ``config.json``: the full config of the run (with every command-line override);
* ``records_manifest.json``: the manifest of the records it trained on (tasks, label names,
  feature dimensions, the tokenizer, class counts), so prediction rebuilds the same tokenizer and
  input shapes without the records directory.

Both are written atomically. ``config.json`` is read back with JSON lists as tuples (the configs'
sequences are tuples) and locked, like a config file given with ``--config``. A relative
``data.dir`` in it means the directory training read (its absolute path is recorded with the
manifest) while that still exists, else it is relative to the directory the commands run in.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import ml_collections
from etils import epath

from mmjax import atomic
from mmjax.errors import ConfigError, MmjaxError

CONFIG = "config.json"
RECORDS_MANIFEST = "records_manifest.json"
# What a resumed run may change: how long it trains and how often it validates, saves and logs.
# Any other change (model, optimizer, data, seed, data.worker_count, whose grain iterator state
# does not carry over) would make the resumed run a different experiment.
RESUMABLE_KEYS = ("num_train_steps", "eval_every_steps", "checkpoint_every_steps", "log_every_steps",
                  "max_checkpoints_to_keep", "early_stopping_patience", "data.read_threads",
                  "data.cache_mb", "data.device_prefetch", "log_confusion_figures")


def json_safe(value):
    """``value`` with NaN and infinite floats as None (JSON has no NaN; e.g. the macro-F1 of a
    task no utterance of the split is labelled for)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: str, value) -> None:
    """Writes ``value`` as indented strict JSON (NaN as null) atomically (temporary file, then rename)."""
    safe = json_safe(value)
    atomic.write_atomically(path, lambda f: json.dump(safe, f, indent=1, ensure_ascii=False, allow_nan=False))


RECORDS_DIR = "records_dir"  # records_manifest.json's entry: the absolute path training read


def save_run(workdir: str, config, manifest: Mapping) -> None:
    """Records the run's config and records manifest in ``workdir`` (process 0, at train start);
    the manifest with the records directory's absolute path (``RECORDS_DIR``)."""
    write_json(epath.Path(workdir) / CONFIG, json.loads(config.to_json_best_effort()))
    records_dir = os.path.abspath(config.data.dir) if atomic.is_local(config.data.dir) else config.data.dir
    write_json(epath.Path(workdir) / RECORDS_MANIFEST, {**manifest, RECORDS_DIR: records_dir})


def with_recorded_records(config, manifest: Mapping | None):
    """``config`` (the workdir's own) reading the records directory training read, where
    ``manifest`` (``load_manifest``) recorded it and it still exists: a relative ``data.dir`` is
    relative to where training ran, so evaluation then works from any directory."""
    recorded = (manifest or {}).get(RECORDS_DIR)
    relative = atomic.is_local(config.data.dir) and not os.path.isabs(config.data.dir)
    if recorded and relative and os.path.isdir(recorded):
        config.data.dir = recorded
    return config


def _flat(tree: Mapping, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def config_differences(workdir: str, config) -> dict[str, tuple]:
    """{dotted key: (``config``'s value, the recorded one)} for each key whose value differs from
    the config ``workdir`` recorded; keys one of the two lacks (added to mmjax after the run was
    recorded) are not compared, and a run that predates ``config.json`` has none."""
    path = epath.Path(workdir) / CONFIG
    if not path.is_file():
        return {}
    recorded = _flat(atomic.read_json_object(path))
    new = _flat(json.loads(config.to_json_best_effort()))
    return {k: (new[k], recorded[k]) for k in sorted(recorded.keys() & new.keys()) if recorded[k] != new[k]}


def describe_differences(differences: Mapping[str, tuple]) -> str:
    """"key=value (recorded value); ..." for ``config_differences``."""
    return "; ".join(f"{k}={new!r} (recorded {old!r})" for k, (new, old) in differences.items())


def check_resume_config(workdir: str, config) -> None:
    """Raises ConfigError if ``config`` differs from the config ``workdir`` recorded in a key
    outside ``RESUMABLE_KEYS`` (``config_differences``), naming each such key with both values."""
    changed = {k: v for k, v in config_differences(workdir, config).items() if k not in RESUMABLE_KEYS}
    if changed:
        differences = describe_differences(changed)
        raise ConfigError(f"workdir {workdir!r} holds a run with another config, resuming it would mix two "
                          f"experiments: {differences}. Train in a new --workdir; a resumed run may change only "
                          f"{', '.join(RESUMABLE_KEYS)}")


def _tuples(value):
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The config ``workdir`` was trained with (its ``config.json``), locked."""
    path = epath.Path(workdir) / CONFIG
    if not path.is_file():
        raise MmjaxError(f"{path} is missing: pass the run's config with --config")
    config = ml_collections.ConfigDict(_tuples(atomic.read_json_object(path)))
    config.lock()
    return config


def load_manifest(workdir: str) -> dict | None:
    """The records manifest ``workdir`` was trained on, or None for runs that predate it."""
    path = epath.Path(workdir) / RECORDS_MANIFEST
    if not path.is_file():
        return None
    return atomic.read_json_object(path)
