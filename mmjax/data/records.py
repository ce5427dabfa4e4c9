"""Write and read prepared corpora: ArrayRecord shards of serialized dialogues plus a manifest.

Layout of a records directory::

    manifest.json                       schema version, tasks, feature dims, counts, tokenizer, and
                                        "text_states" (checkpoint, dim) where the records carry them
    <split>-<i>-of-<n>.array_record     serialized Dialogue records (group size 1: random access)
    <split>.turns.npy                   int32 [dialogues] turns per dialogue (window index)

A corpus is written into a temporary sibling directory and renamed at the end, so an
interrupted run never leaves a directory that looks complete.

The test split is guarded: opening it raises ``ForbiddenSplitError`` unless the caller is inside
``reading_test_split()``, which only ``python -m mmjax.evaluate --split=test`` enters. Training,
model selection and early stopping therefore cannot touch it, whatever code path asks.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np
from array_record.python import array_record_data_source, array_record_module

from mmjax.data import schema
from mmjax.errors import ForbiddenSplitError, MmjaxError
from mmjax.tasks import TASKS

MANIFEST = "manifest.json"
DIALOGUES_PER_SHARD = 2000
# One record per group: grain reads records at random. Snappy: float features and cached states
# hardly compress (zstd, the default, saved 8% on them and doubled the read time); token ids still
# shrink by a third.
WRITER_OPTIONS = "group_size:1,snappy"
TEST_SPLIT = "test"

_test_split_allowed = contextvars.ContextVar("test_split_allowed", default=False)


@contextlib.contextmanager
def reading_test_split():
    """Within this context the test split may be opened (final evaluation only)."""
    token = _test_split_allowed.set(True)
    try:
        yield
    finally:
        _test_split_allowed.reset(token)


def check_split_allowed(split: str) -> None:
    """Raises ForbiddenSplitError for the test split outside ``reading_test_split()``."""
    if split == TEST_SPLIT and not _test_split_allowed.get():
        raise ForbiddenSplitError(
            "the test split is read only by `python -m mmjax.evaluate --split=test`; training, model "
            "selection and early stopping use the train and validation splits")


def _class_counts(dialogues: Sequence[schema.Dialogue], task: str) -> dict[str, int]:
    counts = np.zeros(TASKS[task].num_classes, np.int64)
    for d in dialogues:
        values = d.labels.get(task)
        if values is not None:
            values = values[values >= 0]
            counts += np.bincount(values, minlength=len(counts))
    return dict(zip(TASKS[task].labels, counts.tolist()))


def write_corpus(output_dir: str, corpus: str, splits: Mapping[str, Sequence[schema.Dialogue]], *,
                 tasks: Sequence[str], audio_dim: int, visual_dim: int, text: Mapping,
                 text_states: Mapping | None = None, extra: Mapping | None = None) -> dict:
    """Validates and writes ``splits`` (name -> dialogues) to ``output_dir``; returns the manifest.
    ``text_states``: the ``mmjax.models.text_states`` entry when the dialogues carry them."""
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise MmjaxError(f"cannot create records directory {output_dir!r}: {e.strerror}") from e
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.partial-", dir=parent)
    try:
        manifest = {"schema_version": schema.SCHEMA_VERSION, "corpus": corpus,
                    "tasks": {t: list(TASKS[t].labels) for t in tasks},
                    "features": {"audio_dim": audio_dim, "visual_dim": visual_dim},
                    "text": dict(text), "splits": {}, **(extra or {})}
        if text_states:
            manifest["text_states"] = dict(text_states)
        states_dim = text_states["dim"] if text_states else 0
        for split, dialogues in splits.items():
            num_shards = max(1, -(-len(dialogues) // DIALOGUES_PER_SHARD))
            shards = [f"{split}-{i:05d}-of-{num_shards:05d}.array_record" for i in range(num_shards)]
            for i, shard in enumerate(shards):
                writer = array_record_module.ArrayRecordWriter(os.path.join(staging, shard), WRITER_OPTIONS)
                for d in dialogues[i * DIALOGUES_PER_SHARD:(i + 1) * DIALOGUES_PER_SHARD]:
                    d.validate(audio_dim, visual_dim, states_dim)
                    writer.write(schema.serialize(d, audio_dim, visual_dim))
                writer.close()
            turns = np.array([d.num_turns for d in dialogues], np.int32)
            np.save(os.path.join(staging, f"{split}.turns.npy"), turns)
            manifest["splits"][split] = {
                "shards": shards, "dialogues": len(dialogues), "utterances": int(turns.sum()),
                "class_counts": {t: _class_counts(dialogues, t) for t in tasks}}
        with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
        if os.path.exists(output_dir):
            shutil.rmtree(output_dir)
        os.rename(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def load_manifest(records_dir: str) -> dict:
    """Reads and checks the manifest; errors name the directory and what was expected."""
    path = os.path.join(records_dir, MANIFEST)
    if not os.path.isfile(path):
        raise schema.RecordError(f"no prepared corpus at {records_dir!r}: {MANIFEST} is missing "
                                "(run `python -m mmjax.prepare` first)")
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    version = manifest.get("schema_version")
    if version != schema.SCHEMA_VERSION:
        raise schema.RecordError(
            f"{path}: records were written with schema version {version}, this mmjax reads version "
            f"{schema.SCHEMA_VERSION}; re-run `python -m mmjax.prepare` to rewrite them")
    for split, info in manifest.get("splits", {}).items():
        for shard in info.get("shards", []):
            # A shard is a plain file name: a manifest never makes mmjax read outside its directory.
            if not (isinstance(shard, str) and shard not in ("", ".", "..") and os.path.basename(shard) == shard
                    and "\\" not in shard):
                raise schema.RecordError(f"{path}: split {split!r} names the shard {shard!r}; shards are plain "
                                         f"file names inside {records_dir!r}")
    return manifest


def split_info(manifest: Mapping, records_dir: str, split: str) -> Mapping:
    try:
        return manifest["splits"][split]
    except KeyError:
        raise schema.RecordError(f"{records_dir!r} has no split {split!r}; it has {sorted(manifest['splits'])}") from None


def _open_shards(paths: list[str]):
    """grain's source over the ArrayRecord ``paths``; a missing or damaged shard is one RecordError
    naming it (the reader's own error names no file)."""
    try:
        return array_record_data_source.ArrayRecordDataSource(paths)
    except Exception:  # noqa: BLE001  the reader raises bare RuntimeErrors
        for path in paths:
            try:
                array_record_data_source.ArrayRecordDataSource([path])
            except Exception as shard_error:  # noqa: BLE001
                reason = str(shard_error).strip() or type(shard_error).__name__
                raise schema.RecordError(f"{path}: not a readable ArrayRecord shard ({reason}); the records are "
                                         "damaged or incomplete: re-run `python -m mmjax.prepare`") from shard_error
        raise


class DialogueSource:
    """grain random-access source of serialized dialogues of one split."""

    def __init__(self, records_dir: str, split: str, manifest: Mapping | None = None):
        check_split_allowed(split)
        manifest = manifest or load_manifest(records_dir)
        info = split_info(manifest, records_dir, split)
        self.paths = [os.path.join(records_dir, s) for s in info["shards"]]
        self._source = _open_shards(self.paths)
        if info.get("dialogues", len(self._source)) != len(self._source):
            raise schema.RecordError(f"{records_dir!r}: the manifest counts {info['dialogues']} {split} dialogues "
                                     f"but its shards hold {len(self._source)}")
        self.turns = np.load(os.path.join(records_dir, f"{split}.turns.npy"), allow_pickle=False)
        if len(self.turns) != len(self._source):
            raise schema.RecordError(f"{records_dir!r}: {split}.turns.npy lists {len(self.turns)} "
                                     f"dialogues but the shards hold {len(self._source)}")

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> schema.Dialogue:
        return schema.deserialize(self._source[index])

    def __repr__(self) -> str:
        return f"DialogueSource({self.paths})"
