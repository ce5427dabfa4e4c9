"""Errors a user can act on. Entry points print them as one line, without a traceback."""

import errno

_FULL = {errno.ENOSPC: "No space left on device", errno.EDQUOT: "Disk quota exceeded"}


class MmjaxError(Exception):
    """Something the user can fix: a config key, a corpus file or record, a path, a diverging
    run. The message names the culprit."""


class ConfigError(MmjaxError, ValueError):
    """A config value that is unknown, out of range or inconsistent; names the config key."""


class RecordError(MmjaxError, ValueError):
    """A record, corpus file or records directory that does not match the schema."""


class TrainingDivergedError(MmjaxError, FloatingPointError):
    """A non-finite loss or gradient; names the step and the task."""


class ForbiddenSplitError(MmjaxError):
    """The test split was asked for outside final evaluation (see ``records.reading_test_split``)."""


class InputError(MmjaxError, ValueError):
    """A line of a prediction input file that breaks the JSONL spec; names ``file:line``."""


class CheckpointError(MmjaxError, ValueError):
    """A pretrained checkpoint directory that is missing, of an unsupported family, or whose
    tensors do not match its config; names the file and the tensors."""


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it was raised from (``__cause__``, else ``__context__``), outermost
    first; a cycle ends the chain."""
    errors = []
    while error is not None and all(error is not e for e in errors):
        errors.append(error)
        error = error.__cause__ or error.__context__
    return errors


def out_of_space(error: BaseException) -> bool:
    """Whether ``error`` or one it was raised from is a full disk or quota: an OSError, or the
    error text TensorStore and ArrayRecord raise in its place."""
    return any((isinstance(e, OSError) and e.errno in _FULL) or any(t in str(e) for t in _FULL.values())
               for e in chain(error))
