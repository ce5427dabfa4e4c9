"""The converters' toolkit: rows -> checked dialogues with their features (``conversion`` then
tokenises them and writes the records).

A converter module (``cmma``, ``meld``, ``mustard``, ``jsonl``, ``mmsa``) knows only its file
format. It exposes ``LANGUAGE`` ("en" or "zh": picks the default tokenizer) and
``read(path, options, problems) -> Corpus``, which returns dialogues of :class:`Turn` rows with
their labels as stored (class ids, values, indicators: ``mmjax.tasks``), in dialogue order.
Everything else is the same for every corpus: the checks and features here, the rest in
``conversion.convert``:

1. **Checks** every converter relies on: non-empty text, utterance ids unique in the corpus,
   features finite and of one dimension per modality.
2. **Features**: arrays a corpus carries itself (MMSA pickles, JSONL file references) and arrays
   attached with ``--audio``/``--visual`` (:class:`FeatureFile`: an ``.npz`` or a directory of
   ``<utterance_id>.npy``, keyed by utterance id). An utterance without an array has the
   modality *absent* (length 0, masked); a corpus without any has dimension 0. Nothing is ever
   filled with zeros.
3. **Text**: the tokenizer ``--tokenizer`` names (``text.for_corpus``), fitted on the training
   split where it is a vocabulary.
4. **Records** via ``records.write_corpus`` (temporary directory, renamed at the end), with a
   manifest carrying the report: what was dropped, aliased or skipped, and why.

Bad input is a :class:`Problems` call: by default one ``RecordError`` naming the file and line
(or record id) and what was expected; with ``--skip-bad`` the row (or feature array) is skipped
and counted in the report instead. Problems no row-skipping can fix (a missing file or column, a
file in the wrong encoding as a whole) are always errors.
"""

from __future__ import annotations

import codecs
import collections
import csv
import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from mmjax import progress as progress_lib
from mmjax.data import arrays
from mmjax.errors import ConfigError, RecordError
from mmjax.tasks import TASKS, Task

SPLITS = ("train", "validation", "test")
FEATURE_MODALITIES = ("audio", "visual")


@dataclasses.dataclass(frozen=True)
class Options:
    """Converter options from the ``mmjax.prepare`` flags."""

    skip_bad: bool = False
    allow_outside_paths: bool = False  # feature paths in a JSONL corpus may leave its directory
    encoding: str = ""  # "" = the corpus's published encoding
    protocol: str = ""  # MUStARD split protocol ("" = speaker_independent)
    fold: int = 0  # MUStARD speaker-dependent: the test fold
    seed: int = 0  # seeded splits (MUStARD)
    validation_fraction: float = 0.1  # part of the training data held out for validation (MUStARD; JSONL
    # without validation.jsonl)

    def __post_init__(self):
        if self.encoding:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ConfigError(f"--encoding={self.encoding!r} is not a text encoding Python knows; expected a "
                                  "codec name such as utf-8, gb18030 or latin-1") from None


class Problems:
    """Bad input: a RecordError (default), or with ``skip_bad`` a count per kind for the report.

    ``notes`` count the documented quirk rules that were applied (aliases, dropped blank rows):
    they are not errors, but the report says how often each rule fired.
    """

    def __init__(self, skip_bad: bool = False):
        self.skip_bad = skip_bad
        self.skipped: collections.Counter = collections.Counter()
        self.notes: collections.Counter = collections.Counter()

    def bad(self, kind: str, where: str, message: str, count: int = 1) -> None:
        """``where`` (file and line, or record id): ``message`` (what is wrong, what was expected)."""
        if not self.skip_bad:
            raise RecordError(f"{where}: {message} (pass --skip-bad to skip and count such input)")
        self.skipped[kind] += count

    def note(self, rule: str, count: int = 1) -> None:
        if count:
            self.notes[rule] += count


@dataclasses.dataclass
class Turn:
    """One utterance as read from a corpus file; ``where`` names its file and line (or record)."""

    utterance_id: str
    speaker: str
    text: str
    where: str
    labels: dict = dataclasses.field(default_factory=dict)  # task -> class id, value or indicators (mmjax.tasks)
    audio: np.ndarray | None = None  # [frames, audio_dim] or [audio_dim] as read; None: absent
    visual: np.ndarray | None = None
    feature_where: dict[str, str] = dataclasses.field(default_factory=dict)  # modality -> source


@dataclasses.dataclass
class RawDialogue:
    dialogue_id: str
    turns: list[Turn]
    info: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Corpus:
    """What a converter read: ``splits`` maps train/validation/test to dialogues in order."""

    name: str
    language: str
    splits: dict[str, list[RawDialogue]]
    tasks: tuple[Task, ...]  # the tasks this corpus declares (labels) in the manifest
    auxiliary: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # non-task labels
    extra: dict = dataclasses.field(default_factory=dict)  # manifest sections (protocol, tables)

    def turns(self) -> Iterator[Turn]:
        for dialogues in self.splits.values():
            for d in dialogues:
                yield from d.turns


def progress(iterable, desc: str, total: int | None = None, unit: str = "row"):
    """A progress bar on stderr (see ``mmjax.progress``), gone when done."""
    return progress_lib.bar(iterable, desc=desc, total=total, unit=unit, leave=False)


# ---------------------------------------------------------------------------------- text files

def read_lines(path: str, encoding: str, problems: Problems) -> list[tuple[int, str]]:
    """(line number as an editor shows it, line text with its newline) of a text file.

    Bytes that do not decode as ``encoding`` are an error naming the line; with skip-bad the
    undecodable lines are dropped and counted. A file that decodes as UTF-8 although the corpus
    publishes another encoding is refused as a whole: GB18030 would read UTF-8 Chinese as
    plausible-looking nonsense rather than fail.
    """
    if not os.path.isfile(path):
        raise RecordError(f"{path}: file not found")
    with open(path, "rb") as f:
        data = f.read()
    codec = "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding
    if codec != "utf-8-sig" and not data.isascii() and _is_utf8(data):
        raise RecordError(f"{path}: the file is UTF-8-encoded, expected {encoding} (the corpus's "
                          "published encoding); pass --encoding=utf-8 to read this copy")
    try:
        return list(enumerate(data.decode(codec).splitlines(keepends=True), start=1))
    except UnicodeDecodeError as e:
        if not problems.skip_bad:
            line = data.count(b"\n", 0, e.start) + 1
            problems.bad("undecodable line", f"{path} line {line}",
                         f"byte 0x{data[e.start]:02x} is not valid {encoding}; expected a {encoding} file "
                         "(or pass --encoding=NAME)")
    lines = []  # skip-bad: decode line by line, dropping the lines that do not decode
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            lines.append((number, raw.decode(codec)))
        except UnicodeDecodeError:
            problems.skipped["undecodable line"] += 1
    return lines


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def read_csv(path: str, encoding: str, columns: Sequence[str], problems: Problems,
             header_aliases: Mapping[str, str] | None = None) -> Iterator[tuple[str, dict[str, str]]]:
    """Rows of a CSV file as (``"<path> line <n>"``, {column: value}) for the named ``columns``.

    The header must name every column in ``columns`` (after ``header_aliases``, e.g. a typo in
    a published header); other columns are ignored. Completely blank rows (every field empty
    or whitespace) are dropped and counted. A row with another number of fields than the
    header is malformed.
    """
    lines = read_lines(path, encoding, problems)
    first_line = {"n": None}

    def feed():  # csv.reader pulls lines one at a time: remember where each row starts
        for number, line in lines:
            if first_line["n"] is None:
                first_line["n"] = number
            yield line

    reader = csv.reader(feed())
    header = next(reader, None)
    if header is None:
        raise RecordError(f"{path}: the file is empty, expected a header with columns {list(columns)}")
    header = [h.strip() for h in header]
    for i, name in enumerate(header):
        if name in (header_aliases or {}):
            problems.note(f"{os.path.basename(path)} header {name!r} read as {header_aliases[name]!r}")
            header[i] = header_aliases[name]
    missing = [c for c in columns if c not in header]
    if missing:
        raise RecordError(f"{path} line 1: the header lacks column(s) {missing}; expected columns "
                          f"{list(columns)}, found {header}")
    index = {c: header.index(c) for c in columns}
    first_line["n"] = None
    for row in progress(reader, os.path.basename(path), total=len(lines) - 1):
        where, first_line["n"] = f"{path} line {first_line['n']}", None
        if all(not field.strip() for field in row):
            problems.note(f"{os.path.basename(path)}: completely blank rows dropped")
            continue
        if len(row) != len(header):
            problems.bad("malformed row", where, f"has {len(row)} fields, expected {len(header)} (the header's)")
            continue
        yield where, {c: row[i].strip() for c, i in index.items()}


def label_id(labels: Sequence[str], value: str, column: str, where: str, problems: Problems,
             aliases: Mapping[str, str] | None = None) -> int | None:
    """Class id of ``value`` in ``labels`` (after the documented ``aliases``); None when unknown:
    the caller drops that label and keeps the utterance (as context for its neighbours)."""
    if aliases and value in aliases:
        problems.note(f"{column} {value!r} read as {aliases[value]!r}")
        value = aliases[value]
    if value in labels:
        return labels.index(value)
    problems.bad("unknown label (label dropped)", where,
                 f"{column} {value!r} is not a label; expected one of {list(labels)}")
    return None


# ------------------------------------------------------------------------------------ features

class FeatureFile:
    """Audio or visual feature arrays keyed by utterance id, from either

    * an ``.npz`` whose keys are utterance ids, or
    * a directory of ``<utterance_id>.npy`` (ids containing ``/`` are subdirectories).

    Each array is float [frames, dim] (or [dim], one frame).
    """

    def __init__(self, path: str, modality: str):
        self.path, self.modality = path, modality
        if path.endswith(".npz") and os.path.isfile(path):
            self._npz = np.load(path, allow_pickle=False)
            self.ids = set(self._npz.files)
        elif os.path.isdir(path):
            self._npz = None
            self.ids = {os.path.relpath(os.path.join(root, f), path)[:-len(".npy")].replace(os.sep, "/")
                        for root, _, files in os.walk(path) for f in files if f.endswith(".npy")}
        else:
            raise ConfigError(f"--{modality}={path!r}: expected an .npz file or a directory of "
                              "<utterance_id>.npy files")

    def where(self, utterance_id: str) -> str:
        return (f"{self.path}[{utterance_id!r}]" if self._npz is not None
                else os.path.join(self.path, utterance_id + ".npy"))

    def load(self, utterance_id: str) -> np.ndarray:
        if self._npz is not None:
            return self._npz[utterance_id]
        return arrays.load_npy(self.where(utterance_id))


def attach_features(corpus: Corpus, modality: str, path: str, problems: Problems) -> None:
    """Sets ``modality`` of every utterance that ``path`` (a FeatureFile) has an array for."""
    if any(getattr(t, modality) is not None for t in corpus.turns()):
        raise ConfigError(f"--{modality}={path!r}: the {corpus.name} input already carries {modality} "
                          "features; give one source per modality")
    source = FeatureFile(path, modality)
    turns = {t.utterance_id: t for t in corpus.turns()}
    unknown = sorted(source.ids - turns.keys())
    if unknown:
        problems.bad("feature array for an unknown utterance id", path,
                     f"{len(unknown)} {modality} arrays are keyed by ids that are not utterances of the "
                     f"corpus (e.g. {unknown[:3]}); expected utterance ids such as {next(iter(turns))!r}",
                     count=len(unknown))
    for uid in progress(sorted(source.ids & turns.keys()), f"{modality} features", unit="array"):
        setattr(turns[uid], modality, source.load(uid))
        turns[uid].feature_where[modality] = source.where(uid)


def check_features(corpus: Corpus, problems: Problems) -> dict[str, int]:
    """Checks every feature array (2-D, finite, one dim per modality); returns the dims (0: none).

    A bad array is an error, or with skip-bad dropped: that utterance has the modality absent.
    """
    dims = {}
    for modality in FEATURE_MODALITIES:
        first = None  # (dim, where) of the first array: every other one must match it
        for turn in corpus.turns():
            array = getattr(turn, modality)
            if array is None:
                continue
            where = turn.feature_where.get(modality, turn.where)
            array = _checked_array(array, modality, where, first, problems)
            if array is not None and first is None:
                first = (array.shape[1], where)
            setattr(turn, modality, array)
        dims[modality] = first[0] if first else 0
    return dims


def _checked_array(array, modality: str, where: str, first, problems: Problems) -> np.ndarray | None:
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[None]
    problem = None
    if array.dtype.kind not in "biuf":
        problem = f"{modality} features have dtype {array.dtype}, expected numbers"
    elif array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        problem = (f"{modality} features have shape {list(array.shape)}, expected [frames>0, dim>0] "
                   "(leave an utterance out to mark the modality absent)")
    elif first is not None and array.shape[1] != first[0]:
        problem = (f"{modality} features have dimension {array.shape[1]}, expected {first[0]} "
                   f"(the dimension of {first[1]})")
    elif not np.all(np.isfinite(array)):
        problem = (f"{modality} features contain {int(np.sum(~np.isfinite(array)))} NaN or infinite "
                   "values, expected finite numbers")
    if problem:
        problems.bad(f"bad {modality} feature array (modality left absent)", where, problem)
        return None
    return array.astype(np.float32)


# ------------------------------------------------------------------------------------ prepare

def check_turns(corpus: Corpus, problems: Problems) -> None:
    """Drops (or reports) turns with empty text or an utterance id used before; empty dialogues go."""
    seen: dict[str, str] = {}
    for split, dialogues in corpus.splits.items():
        kept_dialogues = []
        for d in dialogues:
            kept = []
            for turn in d.turns:
                if not turn.text.strip():
                    problems.bad("empty text", turn.where, f"utterance {turn.utterance_id!r} has empty text, "
                                 "expected the words spoken")
                elif turn.utterance_id in seen:
                    problems.bad("duplicated utterance id", turn.where,
                                 f"utterance id {turn.utterance_id!r} is already used at "
                                 f"{seen[turn.utterance_id]}; expected unique ids")
                else:
                    seen[turn.utterance_id] = turn.where
                    kept.append(turn)
            if kept:
                kept_dialogues.append(dataclasses.replace(d, turns=kept))
            else:
                problems.note("dialogues left without utterances by skipped rows (dropped)")
        corpus.splits[split] = kept_dialogues


def builtin_tasks(names: Sequence[str]) -> tuple[Task, ...]:
    """The built-in tasks among ``names``, in the canonical TASKS order."""
    return tuple(task for name, task in TASKS.items() if name in names)
