"""What a config reads from its records: the padded example shapes, and the training and
evaluation batches. Maps ``config.data`` / ``config.model`` onto ``mmjax.data.pipeline``, which
takes plain arguments and knows no config."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import grain
import jax

from mmjax import sharding
from mmjax.data import packing, pipeline, records
from mmjax.data.text import MINILM_NAME
from mmjax.errors import ConfigError
from mmjax.models.text_states import checkpoint_key
from mmjax.tasks import resolve_tasks


def text_states_dim(config, manifest: Mapping) -> int:
    """Width of the cached text states ``config`` reads from the records of ``manifest``; 0 if
    none. A config that reads them from records without them, or of another checkpoint, is an error."""
    if config.model.text_encoder != "cached":
        return 0
    if "text_states" not in manifest:
        raise ConfigError(f"config.model.text_encoder='cached' reads cached text states, but the records in "
                          f"config.data.dir={config.data.dir!r} have none: prepare them with "
                          "`python -m mmjax.prepare ... --text_states=minilm` (or a checkpoint directory)")
    cached = manifest["text_states"]["checkpoint"]
    if cached != checkpoint_key(config.model.pretrained.path):
        raise ConfigError(f"config.model.pretrained.path={config.model.pretrained.path!r}, but the records in "
                          f"config.data.dir={config.data.dir!r} cache the text states of {cached or MINILM_NAME!r}")
    return manifest["text_states"]["dim"]


def shapes(config, manifest: Mapping) -> pipeline.Shapes:
    """The padded shapes of one example of ``config`` over the records of ``manifest``."""
    features = manifest["features"]
    encodes_text = "text" in config.model.modalities and config.model.text_encoder != "cached"
    packed = config.data.get("pack_text", False) and encodes_text  # cached states: no encoder to spare
    return pipeline.Shapes(max_turns=config.data.max_turns, max_tokens=config.data.max_tokens,
                           max_audio_frames=config.data.max_audio_frames,
                           max_visual_frames=config.data.max_visual_frames,
                           audio_dim=max(1, features["audio_dim"]), visual_dim=max(1, features["visual_dim"]),
                           text_states_dim=text_states_dim(config, manifest),
                           tasks=resolve_tasks(config.tasks, manifest), modalities=tuple(config.model.modalities),
                           packed_text=bool(packed))


def text_packing(config, microbatches: int = 1, mesh=None, hosts: int | None = None) -> packing.Packing:
    """The groups a batch's text is packed in (``data.pack_text``): one per data-parallel device
    (of ``mesh``, default the config's mesh over every device) and micro-batch, for one host's
    share of a batch split over ``hosts`` (default every process; 1: the global batch)."""
    mesh = sharding.make_mesh(config) if mesh is None else mesh
    hosts = jax.process_count() if hosts is None else hosts
    return packing.Packing(max(1, sharding.data_parallel_size(mesh) // hosts), microbatches)


def window_source(config, manifest: Mapping, split: str, positions: bool = False) -> pipeline.WindowSource:
    """The context windows of ``split`` in ``config.data.dir`` (``positions``: with their positions);
    training batches' text is packed per device and gradient-accumulation micro-batch."""
    dialogues = records.DialogueSource(config.data.dir, split, manifest)
    microbatches = config.grad_accum_steps if split == "train" else 1
    return pipeline.WindowSource(dialogues, shapes(config, manifest), config.model.context_turns, positions,
                                 cache_bytes=config.data.get("cache_mb", 1024) << 20,
                                 groups=text_packing(config, microbatches))


def train_dataset(config, manifest: Mapping, process_index: int, process_count: int) -> grain.IterDataset:
    """This host's share of the infinite, seeded, shuffled training batches (``pipeline.shuffled_batches``)."""
    return pipeline.shuffled_batches(window_source(config, manifest, "train"), config.batch_size, config.seed,
                                     process_index, process_count, config.data.read_threads,
                                     config.data.worker_count)


def eval_batches(config, manifest: Mapping, split: str, process_index: int, process_count: int) -> Iterator[dict]:
    """Every window of ``split`` once, in order, with positions (``pipeline.ordered_batches``)."""
    return pipeline.ordered_batches(window_source(config, manifest, split, positions=True), config.eval_batch_size,
                                    process_index, process_count, config.data.read_threads)
