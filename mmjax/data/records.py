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
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np
from array_record.python import array_record_data_source, array_record_module

from mmjax.data import schema
from mmjax import atomic
from mmjax.errors import ForbiddenSplitError, MmjaxError, out_of_space
from mmjax.tasks import MULTILABEL, REGRESSION, Task, corpus_tasks, to_manifest

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


def _labelled(dialogues: Sequence[schema.Dialogue], task: Task) -> np.ndarray:
    """Every labelled utterance's label of ``task``: [N, *task.label_shape]."""
    values = [d.labels[task.name] for d in dialogues if task.name in d.labels]
    if not values:
        return task.unlabelled(0)
    values = np.concatenate(values)
    return values[task.is_labelled(values)]


def label_statistics(dialogues: Sequence[schema.Dialogue], tasks: Sequence[Task]) -> dict:
    """A split's label statistics for the manifest: ``labelled`` (task -> labelled utterances);
    ``class_counts`` (classification: label -> utterances; multilabel: label -> utterances the
    label applies to); ``value_stats`` (regression: mean, std, min, max)."""
    out = {"labelled": {}, "class_counts": {}, "value_stats": {}}
    for task in tasks:
        values = _labelled(dialogues, task)
        out["labelled"][task.name] = len(values)
        if task.kind == REGRESSION:
            out["value_stats"][task.name] = ({k: float(f(values)) for k, f in
                                              (("mean", np.mean), ("std", np.std), ("min", np.min), ("max", np.max))}
                                             if len(values) else {})
        else:
            counts = values.sum(0) if task.kind == MULTILABEL else np.bincount(values, minlength=task.num_classes)
            out["class_counts"][task.name] = dict(zip(task.labels, np.asarray(counts, np.int64).tolist()))
    if not out["value_stats"]:
        del out["value_stats"]
    return out


def label_problem(task: Task, values: np.ndarray) -> str | None:
    """What is wrong with ``values``, a dialogue's stored labels of ``task``, or None (cheap: it
    runs on every record read)."""
    if values.shape[1:] != task.label_shape or values.dtype != task.label_dtype:
        return f"of shape {values.shape[1:]} and dtype {values.dtype}, not {task.label_shape} and {np.dtype(task.label_dtype)}"
    if not values.size:
        return None
    if task.kind == REGRESSION:  # NaN (unlabelled) compares False both ways
        low, high = task.value_range
        return f"outside the manifest's range [{low:g}, {high:g}]" if ((values < low) | (values > high)).any() else None
    top = 1 if task.kind == MULTILABEL else task.num_classes - 1
    if not -1 <= int(values.min()) <= int(values.max()) <= top:
        return f"outside -1..{top}, the manifest's {task.num_classes} {task.kind} labels"
    if task.kind == MULTILABEL and (values.min(-1) < 0).any() and ((values.min(-1) < 0) & (values.max(-1) >= 0)).any():
        return "partly missing (an utterance's indicators are all -1 or none)"
    return None


def labelled_count(split: Mapping, task: str) -> int:
    """Labelled utterances of ``task`` in a split's manifest entry (records written before
    ``labelled`` existed: the sum of its class counts)."""
    if "labelled" in split:
        return split["labelled"].get(task, 0)
    return sum(split["class_counts"].get(task, {}).values())


# The files write_corpus puts in a records directory: the only ones it may replace (with the
# artefacts file systems leave anywhere: macOS's .DS_Store, NFS's .nfs* of deleted open files).
_RECORD_FILE = re.compile(r"(manifest\.json|[\w.-]+\.array_record|[\w.-]+\.turns\.npy|\.DS_Store|\.nfs\w+)")


def replace_problem(output_dir: str) -> str | None:
    """Why ``write_corpus`` must not replace ``output_dir`` (it replaces the directory whole), or
    None where it is absent, empty or holds only prepared records: a mistyped output path must
    never delete a workdir or a corpus."""
    if not os.path.lexists(output_dir):
        return None
    if os.path.islink(output_dir):  # replacing it would remove the link's target's contents or fail late
        return "is a symbolic link; give the directory it points to"
    if not os.path.isdir(output_dir):
        return "exists and is not a directory"
    others = sorted(name for name in os.listdir(output_dir) if not _RECORD_FILE.fullmatch(name))
    if not others:
        return None
    shown = ", ".join(repr(name) for name in others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return f"holds files that are not prepared records ({shown})"


def check_replaceable(output_dir: str) -> None:
    """Raises where ``replace_problem`` finds one."""
    problem = replace_problem(output_dir)
    if problem:
        raise MmjaxError(f"records directory {output_dir!r} {problem}; preparing replaces the whole directory, so "
                         "give a new or empty directory, or one that prepare wrote")


def write_corpus(output_dir: str, corpus: str, splits: Mapping[str, Sequence[schema.Dialogue]], *,
                 tasks: Sequence[Task], audio_dim: int, visual_dim: int, text: Mapping,
                 text_states: Mapping | None = None, extra: Mapping | None = None) -> dict:
    """Validates and writes ``splits`` (name -> dialogues) to ``output_dir``; returns the manifest,
    which declares ``tasks`` (see ``mmjax.tasks``).
    ``text_states``: the ``mmjax.models.text_states`` entry when the dialogues carry them."""
    output_dir = os.path.abspath(output_dir)
    check_replaceable(output_dir)
    parent = os.path.dirname(output_dir)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise MmjaxError(f"cannot create records directory {output_dir!r}: {e.strerror}") from e
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.partial-", dir=parent)
    try:
        manifest = {"schema_version": schema.SCHEMA_VERSION, "corpus": corpus,
                    "tasks": to_manifest(tasks),
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
                    for task in tasks:
                        problem = task.name in d.labels and label_problem(task, np.asarray(d.labels[task.name]))
                        if problem:
                            raise schema.RecordError(f"dialogue {d.dialogue_id!r}: {task.name} labels {problem}")
                    writer.write(schema.serialize(d, audio_dim, visual_dim))
                writer.close()
            turns = np.array([d.num_turns for d in dialogues], np.int32)
            np.save(os.path.join(staging, f"{split}.turns.npy"), turns)
            manifest["splits"][split] = {
                "shards": shards, "dialogues": len(dialogues), "utterances": int(turns.sum()),
                **label_statistics(dialogues, tasks)}
        with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1, ensure_ascii=False)
        if os.path.exists(output_dir):
            shutil.rmtree(output_dir)
        os.rename(staging, output_dir)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, Exception) and out_of_space(e):
            before = "the records there before are unchanged" if os.path.exists(output_dir) else "nothing was written"
            raise MmjaxError(f"no space left on the device of {output_dir!r} while writing the records; the "
                             f"partial copy was removed and {before}") from e
        raise
    return manifest


def load_manifest(records_dir: str) -> dict:
    """Reads and checks the manifest; errors name the directory and what was expected."""
    path = os.path.join(records_dir, MANIFEST)
    if not os.path.isfile(path):
        raise schema.RecordError(f"no prepared corpus at {records_dir!r}: {MANIFEST} is missing "
                                "(run `python -m mmjax.prepare` first)")
    manifest = atomic.read_json_object(path, schema.RecordError, "run `python -m mmjax.prepare` again")
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


def tokens_cut(manifest: Mapping, split: str, max_tokens: int) -> tuple[int, int] | None:
    """(utterances of ``split`` longer than ``max_tokens`` tokens, all its utterances), from the
    token-length counts ``prepare`` reports; None for records without them."""
    counts = manifest.get("report", {}).get("tokens", {}).get(split, {}).get("length_counts")
    return None if counts is None else (int(sum(counts[max_tokens + 1:])), int(sum(counts)))


def split_info(manifest: Mapping, records_dir: str, split: str) -> Mapping:
    try:
        return manifest["splits"][split]
    except KeyError:
        raise schema.RecordError(f"{records_dir!r} has no split {split!r}; it has {sorted(manifest['splits'])}") from None


def _open_shard(path: str):
    """A reader of one ArrayRecord shard; a missing or damaged shard is one RecordError naming it
    (the reader's own error names no file)."""
    try:
        return array_record_data_source.ArrayRecordDataSource([path])
    except Exception as e:  # noqa: BLE001  the reader raises bare RuntimeErrors
        reason = str(e).strip() or type(e).__name__
        raise schema.RecordError(f"{path}: not a readable ArrayRecord shard ({reason}); the records are "
                                 "damaged or incomplete: re-run `python -m mmjax.prepare`") from e


class DialogueSource:
    """grain random-access source of serialized dialogues of one split.

    Every record read is checked against the manifest and the turns index (turns, feature and
    text-state dims, label range); a record that is unreadable or disagrees is one RecordError
    naming its shard and position. The first and last record of each shard are read when the
    source opens, so a manifest that disagrees with its shards stops before the first step."""

    def __init__(self, records_dir: str, split: str, manifest: Mapping | None = None):
        check_split_allowed(split)
        manifest = manifest or load_manifest(records_dir)
        info = split_info(manifest, records_dir, split)
        self.paths = [os.path.join(records_dir, s) for s in info["shards"]]
        self._shards = [_open_shard(p) for p in self.paths]
        self._ends = np.cumsum([len(shard) for shard in self._shards], dtype=np.int64)
        total = int(self._ends[-1]) if len(self._ends) else 0
        if info.get("dialogues", total) != total:
            raise schema.RecordError(f"{records_dir!r}: the manifest counts {info['dialogues']} {split} dialogues "
                                     f"but its shards hold {total}")
        turns = os.path.join(records_dir, f"{split}.turns.npy")
        if not os.path.isfile(turns):
            raise schema.RecordError(f"{turns!r} is missing: the records at {records_dir!r} are incomplete; run "
                                     "`python -m mmjax.prepare` again")
        self.turns = np.load(turns, allow_pickle=False)
        if len(self.turns) != total:
            raise schema.RecordError(f"{records_dir!r}: {split}.turns.npy lists {len(self.turns)} "
                                     f"dialogues but the shards hold {total}")
        features = manifest.get("features", {})
        self._dims = {"audio": features.get("audio_dim", 0), "visual": features.get("visual_dim", 0),
                      "text_states": (manifest.get("text_states") or {}).get("dim", 0)}
        self._tasks = corpus_tasks(manifest)
        starts = np.concatenate([[0], self._ends[:-1]])
        for index in sorted({int(i) for i in np.concatenate([starts, self._ends - 1]) if 0 <= i < total}):
            self[index]

    def _locate(self, index: int) -> tuple[int, int]:
        shard = int(np.searchsorted(self._ends, index, side="right"))
        return shard, index - (int(self._ends[shard - 1]) if shard else 0)

    def __getitem__(self, index: int) -> schema.Dialogue:
        shard, position = self._locate(index)
        where = f"{self.paths[shard]}: record {position}"
        try:
            dialogue = schema.deserialize(self._shards[shard][position])
        except Exception as e:  # noqa: BLE001  reader and decoder raise many types for damaged bytes
            raise schema.RecordError(f"{where} is damaged ({str(e).strip()[:200] or type(e).__name__}); "
                                     "re-run `python -m mmjax.prepare`") from e
        problem = self._disagreement(dialogue, int(self.turns[index]))
        if problem:
            raise schema.RecordError(f"{where} (dialogue {dialogue.dialogue_id!r}) {problem}; the records are "
                                     "inconsistent: re-run `python -m mmjax.prepare`")
        return dialogue

    def _disagreement(self, d: schema.Dialogue, turns: int) -> str | None:
        """What in ``d`` disagrees with the turns index or the manifest, or None."""
        if d.num_turns != turns:
            return f"has {d.num_turns} utterances; the turns index says {turns}"
        for modality in ("audio", "visual"):
            for feats in getattr(d, modality):
                if feats is not None and feats.shape[1] != self._dims[modality]:
                    return f"has {modality} features of dim {feats.shape[1]}; the manifest says {self._dims[modality]}"
        states_dim = d.text_states[0].shape[1] if d.text_states else 0
        if states_dim != self._dims["text_states"]:
            return f"has text states of dim {states_dim}; the manifest says {self._dims['text_states']}"
        for task, values in d.labels.items():
            spec = self._tasks.get(task)
            problem = spec and label_problem(spec, values)
            if problem:
                return f"has {task} labels {problem}"
        return None

    def __len__(self) -> int:
        return len(self.turns)

    def __repr__(self) -> str:
        return f"DialogueSource({self.paths})"
