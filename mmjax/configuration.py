"""Validation of a run config: every problem is reported with its config key."""

from __future__ import annotations

from mmjax import losses
from mmjax.errors import ConfigError
from mmjax.models.encoders import MAX_NGRAM_ORDER
from mmjax.tasks import TASKS, corpus_tasks, resolve_tasks

_POSITIVE_INTS = ("batch_size", "grad_accum_steps", "eval_batch_size", "num_train_steps", "log_every_steps",
                  "eval_every_steps", "checkpoint_every_steps", "max_checkpoints_to_keep",
                  "data.max_turns", "data.max_tokens", "data.max_audio_frames",
                  "data.max_visual_frames", "model.width", "model.mlp_dim", "model.num_heads",
                  "model.tower_hidden", "model.tower_layers", "data.read_threads")

TEXT_ENCODERS = ("scratch", "ngram", "pretrained", "cached")
PRETRAINED_MODES = ("finetune", "frozen")
SELECTION_METRICS = ("macro_f1", "weighted_f1")  # config.selection_metric
CHECKPOINT_SELECTIONS = ("joint", "per_task")  # config.checkpoint_selection


def _get(config, key: str):
    value = config
    for part in key.split("."):
        value = value[part]
    return value


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _validate_ngram(ngram) -> None:
    if not (_is_int(ngram.orders) and 1 <= ngram.orders <= MAX_NGRAM_ORDER):
        raise ConfigError(f"config.model.ngram.orders={ngram.orders!r}: expected an integer in 1..{MAX_NGRAM_ORDER}")
    if not (_is_int(ngram.buckets) and ngram.buckets > 0):
        raise ConfigError(f"config.model.ngram.buckets={ngram.buckets!r}: expected a positive integer")
    if not 0.0 <= ngram.dropout < 1.0:
        raise ConfigError(f"config.model.ngram.dropout={ngram.dropout!r}: expected a value in [0, 1)")
    if not ngram.get("init_scale", 0.0) >= 0.0:
        raise ConfigError(f"config.model.ngram.init_scale={ngram.init_scale!r}: expected a standard deviation >= 0")


# Tuples of names that may be given on the command line as --config.key=a,b.
_NAME_TUPLES = ("tasks", "model.modalities")


def validate(config, process_count: int = 1) -> None:
    """Raises ConfigError naming the first offending key. A tuple of names (``_NAME_TUPLES``)
    given on the command line as ``--config.tasks=a,b`` (which ml_collections reads as the one
    name "a,b") is split."""
    for key in _NAME_TUPLES:
        names = _get(config, key)
        if isinstance(names, (tuple, list)) and any(isinstance(n, str) and "," in n for n in names):
            parent, _, leaf = key.rpartition(".")
            section = _get(config, parent) if parent else config
            setattr(section, leaf, tuple(n.strip() for t in names for n in t.split(",") if n.strip()))
    for key in _POSITIVE_INTS:
        value = _get(config, key)
        if not (_is_int(value) and value > 0):
            raise ConfigError(f"config.{key}={value!r}: expected a positive integer")
    for key in ("learning_rate", "grad_clip_norm"):
        if not _get(config, key) > 0:
            raise ConfigError(f"config.{key}={_get(config, key)!r}: expected a positive number")
    # Runs saved before early stopping existed lack its key (they never stopped early).
    for key, value in (("warmup_steps", config.warmup_steps),
                       ("early_stopping_patience", config.get("early_stopping_patience", 0)),
                       ("model.text_layers", config.model.text_layers),
                       ("model.feature_layers", config.model.feature_layers),
                       ("data.worker_count", config.data.worker_count),
                       ("data.cache_mb", config.data.get("cache_mb", 0)),
                       ("data.device_prefetch", config.data.get("device_prefetch", 0))):
        if not (_is_int(value) and value >= 0):
            raise ConfigError(f"config.{key}={value!r}: expected an integer >= 0")
    for key, value in (("model.dropout", config.model.dropout), ("ema_decay", config.get("ema_decay", 0.0))):
        if not (_is_number(value) and 0.0 <= value < 1.0):
            raise ConfigError(f"config.{key}={value!r}: expected a value in [0, 1)")
    if not isinstance(config.data.get("pack_text", False), bool):
        raise ConfigError(f"config.data.pack_text={config.data.pack_text!r}: expected True or False")
    if config.model.width % config.model.num_heads:
        raise ConfigError(f"config.model.width={config.model.width} is not divisible by "
                          f"config.model.num_heads={config.model.num_heads}")
    for key, choices in (("model.text_encoder", TEXT_ENCODERS), ("model.pretrained.mode", PRETRAINED_MODES)):
        if _get(config, key) not in choices:
            raise ConfigError(f"config.{key}={_get(config, key)!r} is not one of {list(choices)}")
    if config.model.text_encoder == "cached" and config.model.pretrained.mode != "frozen":
        raise ConfigError(f"config.model.text_encoder='cached' reads a frozen encoder's states, but "
                          f"config.model.pretrained.mode={config.model.pretrained.mode!r}: set it to 'frozen' "
                          "(fine-tuning needs text_encoder='pretrained')")
    if config.model.text_encoder == "ngram":  # runs saved before it existed lack model.ngram
        _validate_ngram(config.model.ngram)
    scale = config.model.pretrained.learning_rate_scale
    if not scale > 0:
        raise ConfigError(f"config.model.pretrained.learning_rate_scale={scale!r}: expected a positive number "
                          "(below 1 fine-tunes the pretrained encoder more gently)")
    for key, registry in (("loss_balancing", losses.LOSS_BALANCING), ("class_weights", losses.CLASS_WEIGHTING)):
        if _get(config, key) not in registry:
            raise ConfigError(f"config.{key}={_get(config, key)!r} is not one of {sorted(registry)}")
    if config.model.tower_attention and config.model.tower_hidden % config.model.num_heads:
        raise ConfigError(f"config.model.tower_attention needs config.model.tower_hidden="
                          f"{config.model.tower_hidden} divisible by config.model.num_heads={config.model.num_heads}")
    if losses.regression_loss(config) not in losses.REGRESSION_LOSSES:
        raise ConfigError(f"config.regression_loss={config.regression_loss!r} is not one of "
                          f"{list(losses.REGRESSION_LOSSES)}")
    if config.get("selection_metric", "macro_f1") not in SELECTION_METRICS:
        raise ConfigError(f"config.selection_metric={config.selection_metric!r} is not one of "
                          f"{list(SELECTION_METRICS)}")
    if config.get("checkpoint_selection", "joint") not in CHECKPOINT_SELECTIONS:
        raise ConfigError(f"config.checkpoint_selection={config.checkpoint_selection!r} is not one of "
                          f"{list(CHECKPOINT_SELECTIONS)}")
    if isinstance(config.tasks, str) or not config.tasks or not all(isinstance(t, str) for t in config.tasks):
        raise ConfigError(f"config.tasks={config.tasks!r}: expected a non-empty sequence of task names")
    for task, weight in config.task_weights.items():
        if not (_is_number(weight) and weight >= 0):
            raise ConfigError(f"config.task_weights.{task}={weight!r}: expected a number >= 0")
    for key in ("batch_size", "eval_batch_size"):
        if _get(config, key) % process_count:
            raise ConfigError(f"config.{key}={_get(config, key)} is not divisible by the "
                              f"{process_count} processes")


def check_tasks(config, manifest) -> None:
    """``config.tasks`` and ``config.task_weights`` name tasks the corpus declares in ``manifest``."""
    declared = list(corpus_tasks(manifest))
    # The built-in tasks' weights (every config has them, 1.0) are ignored where the corpus lacks them.
    for key, names in (("tasks", config.tasks), ("task_weights", [t for t in config.task_weights if t not in TASKS])):
        unknown = [t for t in names if t not in declared]
        if unknown:
            raise ConfigError(f"config.{key} names {unknown}, which the corpus at {config.data.dir!r} does not "
                              f"declare (it has {declared})")
    resolve_tasks(config.tasks, manifest)
