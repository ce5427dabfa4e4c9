"""The MMSA feature files (thuiar/MMSA: CMU-MOSI, CMU-MOSEI, CH-SIMS ``*.pkl``), read safely.

What is read, per split key ``train`` / ``valid`` / ``test`` (-> train / validation / test;
``valid`` may be missing), N utterances each:

* ``id``: N strings ``<video>$_$<clip>``. A dialogue is a video, its turns the clips in order
  (numeric clips numerically). The speaker is the video (one speaker per video in MOSI/MOSEI).
* ``raw_text``: N strings, tokenized like any corpus (``text``/``text_bert``, pre-computed text
  features, are not used: the model has its own text encoder).
* ``regression_labels``: N sentiment scores -> two tasks: ``sentiment_intensity``, a regression
  task over [-3, 3] (CMU-MOSI/MOSEI), or [-1, 1] where every score of the file lies in it
  (CH-SIMS), scored by ``mmjax.metrics``: MAE, Corr, and MMSA's Acc-2, F1 and Acc-7 as MMSA
  defines them for MOSI/MOSEI (for CH-SIMS MMSA reports Acc-2 as <= 0 vs > 0, Acc-3 and Acc-5
  instead, which are not computed here); and ``sentiment``, the classes negative (< 0), neutral
  (== 0), positive (> 0).
  ``classification_labels`` and the per-modality ``*_labels_*`` of CH-SIMS are not read.
* ``audio`` float [N, Fa, Da] and ``vision`` float [N, Fv, Dv] (-> ``visual``), optional; with
  ``audio_lengths`` / ``vision_lengths`` (N ints) only the first ``length`` frames are kept
  (0: the modality is absent for that clip). Without lengths every frame is kept.

Pickles can run arbitrary code when loaded, so the file is read by :class:`RestrictedUnpickler`,
which builds only numpy arrays, numpy scalars and Python's built-in containers, strings and
numbers; any other global is refused with a RecordError naming ``module.name``.
"""

from __future__ import annotations

import builtins
import codecs
import dataclasses
import functools
import io
import math
import os
import pickle

import numpy as np

from mmjax.data.corpora import common
from mmjax.errors import RecordError
from mmjax.tasks import TASKS

LANGUAGE = "en"
SPLIT_KEYS = {"train": "train", "valid": "validation", "test": "test"}
MODALITIES = {"audio": "audio", "vision": "visual"}
SEPARATOR = "$_$"


def _numpy_globals() -> dict[tuple[str, str], object]:
    """What numpy arrays and scalars need when unpickled, under numpy 1.x and 2.x module names."""
    from numpy._core import multiarray, numeric  # numpy >= 2: numpy.core is a deprecated alias
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    for name in ("set", "frozenset", "bytearray", "complex"):  # protocols 0-2 name these containers
        allowed[("builtins", name)] = allowed[("__builtin__", name)] = getattr(builtins, name)
    allowed[("_codecs", "encode")] = codecs.encode  # protocols <= 2 write bytes with it
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the globals numpy arrays need; anything else is refused.

    Nor may a small pickle allocate much: an array's or bytearray's data must be in the pickle,
    so the callables that allocate from a size alone (``bytearray(n)``, ``ndarray(shape)``,
    ``_reconstruct``) are refused sizes beyond ``budget`` bytes (default: the pickle's size)."""

    ALLOWED = _numpy_globals()

    def __init__(self, file, path: str, budget: int):
        super().__init__(file)
        self.path, self.budget = path, budget
        self._allowed = dict(self.ALLOWED)
        ndarray = _Sized(np.ndarray, self._check)
        for key, value in self.ALLOWED.items():
            if value is np.ndarray:
                self._allowed[key] = ndarray
            elif getattr(value, "__name__", "") == "_reconstruct":
                self._allowed[key] = functools.partial(self._reconstruct, value, ndarray)
            elif value is bytearray:
                self._allowed[key] = _Sized(bytearray, self._check_bytearray)

    def _check(self, shape=(), dtype=float, *_, **__) -> None:
        size = math.prod((shape,) if isinstance(shape, int) else shape) * np.dtype(dtype).itemsize
        if size > self.budget:
            raise RecordError(f"{self.path}: the pickle asks for a {shape} {np.dtype(dtype)} array ({size:,} bytes) "
                              f"but holds {self.budget:,} bytes")

    def _check_bytearray(self, source=b"", *_) -> None:
        if isinstance(source, int):
            self._check(source, np.uint8)

    def _reconstruct(self, reconstruct, ndarray, subtype, shape, dtype):
        self._check(shape, np.uint8 if isinstance(dtype, bytes) else dtype)
        return reconstruct(np.ndarray if subtype is ndarray else subtype, shape, dtype)

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise RecordError(f"{self.path}: the pickle refers to {module}.{name}, which is refused; expected "
                              "only numpy arrays, lists, dicts, strings and numbers") from None


class _Sized:
    """``fn`` behind ``check(*args)``: an allocating callable a pickle may name, size-checked."""

    def __init__(self, fn, check):
        self.fn, self.check = fn, check

    def __call__(self, *args, **kwargs):
        self.check(*args, **kwargs)
        return self.fn(*args, **kwargs)


def load(path: str) -> object:
    """The object in the pickle at ``path``, built by :class:`RestrictedUnpickler`."""
    if not os.path.isfile(path):
        raise RecordError(f"{path}: file not found; expected an MMSA .pkl feature file")
    with open(path, "rb") as f:
        data = f.read()
    try:
        return RestrictedUnpickler(io.BytesIO(data), path, budget=len(data)).load()
    except RecordError:
        raise
    except Exception as e:  # truncated or not a pickle at all
        raise RecordError(f"{path}: cannot be read as a pickle ({type(e).__name__}: {e})") from e


INTENSITY = TASKS["sentiment_intensity"]  # over MOSI/MOSEI's [-3, 3]
NARROW = (-1.0, 1.0)  # CH-SIMS's range


def _labels(score: float, high: float) -> dict | None:
    """The clip's ``sentiment`` class and ``sentiment_intensity``; None for a score outside [-high, high]."""
    if not -high <= score <= high:  # NaN included
        return None
    return {"sentiment": 0 if score < 0 else 1 if score == 0 else 2, INTENSITY.name: score}


def _clip_key(clip: str):
    return (0, int(clip), "") if clip.isdigit() else (1, 0, clip)


def _read_split(path: str, key: str, part, high: float, problems: common.Problems) -> list[common.RawDialogue]:
    where = f"{path} [{key!r}]"
    if not isinstance(part, dict):
        raise RecordError(f"{where}: is a {type(part).__name__}, expected a dict of arrays")
    missing = [k for k in ("id", "raw_text", "regression_labels") if k not in part]
    if missing:
        raise RecordError(f"{where}: lacks {missing}; expected keys id, raw_text, regression_labels "
                          "and optionally audio, vision, audio_lengths, vision_lengths")
    n = len(part["id"])
    for name in ("raw_text", "regression_labels", *MODALITIES, "audio_lengths", "vision_lengths"):
        if name in part and len(part[name]) != n:
            raise RecordError(f"{where}[{name!r}]: has {len(part[name])} entries, expected {n} (one per id)")
    videos: dict[str, list[tuple[str, common.Turn]]] = {}
    for i in common.progress(range(n), f"{os.path.basename(path)} {key}", unit="clip"):
        uid, row_where = str(part["id"][i]), f"{where} row {i}"
        video, separator, clip = uid.partition(SEPARATOR)
        if not separator or not video or not clip:
            problems.bad("malformed utterance id", row_where, f"id {uid!r}: expected '<video>{SEPARATOR}<clip>'")
            continue
        score = float(part["regression_labels"][i])
        labels = _labels(score, high)
        if labels is None:  # the labels are dropped; the clip stays as context of its video
            problems.bad("unknown label (label dropped)", f"{row_where} (id {uid!r})",
                         f"regression_labels is {score}; expected a sentiment score in [{-high:g}, {high:g}]")
        turn = common.Turn(uid, video, str(part["raw_text"][i]), f"{row_where} (id {uid!r})", labels or {})
        for name, modality in MODALITIES.items():
            if name in part:
                frames = np.asarray(part[name][i])
                if f"{name}_lengths" in part:
                    frames = frames[:int(part[f"{name}_lengths"][i])]
                if len(frames):
                    setattr(turn, modality, frames)
        videos.setdefault(video, []).append((clip, turn))
    return [common.RawDialogue(video, [t for _, t in sorted(turns, key=lambda ct: _clip_key(ct[0]))])
            for video, turns in videos.items()]


def read(path: str, options: common.Options, problems: common.Problems) -> common.Corpus:
    data = load(path)
    if not isinstance(data, dict) or "train" not in data:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise RecordError(f"{path}: holds {keys}, expected a dict with keys {list(SPLIT_KEYS)}")
    unknown = sorted(set(data) - set(SPLIT_KEYS))
    if unknown:
        raise RecordError(f"{path}: unknown split keys {unknown}; expected {list(SPLIT_KEYS)}")
    scores = np.concatenate([np.asarray(data[k].get("regression_labels", []), np.float64).reshape(-1)
                             for k in SPLIT_KEYS if isinstance(data.get(k), dict)])
    narrow = np.nanmax(np.abs(scores), initial=0.0) <= 1.0
    intensity = dataclasses.replace(INTENSITY, value_range=NARROW) if narrow else INTENSITY
    splits = {SPLIT_KEYS[key]: _read_split(path, key, data[key], intensity.value_range[1], problems)
              for key in SPLIT_KEYS if key in data}
    return common.Corpus("mmsa", LANGUAGE, splits, common.builtin_tasks(["sentiment"]) + (intensity,))
