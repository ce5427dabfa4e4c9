"""Errors a user can act on. Entry points print them as one line, without a traceback."""


class MmjaxError(Exception):
    """Bad input: a config key, a corpus file or record, a path. The message names the culprit."""


class ConfigError(MmjaxError, ValueError):
    """A config value that is unknown, out of range or inconsistent; names the config key."""


class RecordError(MmjaxError, ValueError):
    """A record, corpus file or records directory that does not match the schema."""
