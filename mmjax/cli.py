"""Shared start-up for the command-line entry points."""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib.util
import logging as pylogging
import os
import re
import sys

import jax
from absl import app, flags, logging
from absl.logging import converter

from mmjax.errors import MmjaxError, out_of_space


def initialize() -> None:
    """Multi-host runs set MMJAX_DISTRIBUTED=1 (launch scripts do) to join jax.distributed.

    The coordinator, process count and id come from the cluster (Cloud TPU, SLURM, ...) or,
    where there is none, from JAX_COORDINATOR_ADDRESS, MMJAX_NUM_PROCESSES and MMJAX_PROCESS_ID.
    """
    if os.environ.get("MMJAX_DISTRIBUTED") == "1":
        explicit = {}
        if "MMJAX_NUM_PROCESSES" in os.environ:
            explicit = {"num_processes": int(os.environ["MMJAX_NUM_PROCESSES"]),
                        "process_id": int(os.environ["MMJAX_PROCESS_ID"])}
        jax.distributed.initialize(**explicit)
    # Orbax and XLA log every save and backend probe at INFO; keep the console to progress, results
    # and mmjax's own status lines (show_status_lines).
    logging.set_verbosity(logging.WARNING)
    if jax.process_index() == 0:
        print(f"JAX {jax.__version__}: {jax.process_count()} process(es), {jax.device_count()} "
              f"{jax.devices()[0].platform} device(s)", file=sys.stderr)


@contextlib.contextmanager
def user_errors(program: str):
    """Bad input (config, corpus, paths) ends the program with one line naming the culprit."""
    try:
        yield
    except MmjaxError as e:
        print(f"{program}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        if not out_of_space(e):
            raise
        print(f"{program}: error: no space left on the device of {e.filename!r}: {e.strerror}", file=sys.stderr)
        sys.exit(2)


def _unquote(error: Exception) -> str:
    """ml_collections nests KeyError reprs ("'\\'key\\'\\nDid you mean...'"): unwrap them."""
    text = str(error.args[0] if error.args else error)
    while len(text) > 1 and text[0] == text[-1] and text[0] in "'\"":
        try:
            text = ast.literal_eval(text)
        except (SyntaxError, ValueError):
            break
    return text.replace("\n", " ")


def unknown_key_message(error: Exception, args, config=None) -> str:
    """"unknown config key 'config.model.foo'" (with a "did you mean" where ml_collections has
    one, else the closest key of its section in ``config``, the loaded config file) from the error
    of an unknown override among ``args``: ml_collections names only the unknown part of the key,
    so the whole override is looked up in ``args``. An error that names no part of any override
    (raised inside a config file, say) is given whole."""
    text = _unquote(error)
    key = re.match(r"'?([\w-]+)'?", text)
    overrides = [a[2:].split("=", 1)[0] for a in args if a.startswith("--config.")]
    full = next((o for o in overrides if key and key.group(1) in o.split(".")[1:]), None)
    if full is None:
        return f"bad config: {text}"
    suggestion = re.search(r'Did you mean "([^"]+)"', text)
    guess = suggestion.group(1) if suggestion else _closest_key(config, full.split(".")[1:])
    return f"unknown config key {full!r}" + (f"; did you mean {guess!r}?" if guess else "")


def _config_of(path: str | None):
    """The config the file ``path`` builds (``get_config()``), or None: to suggest keys after an
    override failed, when ml_collections has not kept it."""
    try:
        spec = importlib.util.spec_from_file_location("_mmjax_config_file", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.get_config()
    except Exception:  # noqa: BLE001 - only a suggestion is lost
        return None


def _closest_key(config, parts: list[str]) -> str | None:
    """The key of ``config`` closest to the first of ``parts`` (a dotted key's) it lacks, or None."""
    section = config
    for part in parts:
        if not hasattr(section, "keys"):
            return None
        if part not in section:
            close = difflib.get_close_matches(part, list(section.keys()), n=1)
            return close[0] if close else None
        section = section[part]
    return None


def _config_file(args) -> str | None:
    """The file of the last ``--config=PATH[:args]`` among ``args`` (the one absl keeps), or None."""
    path = next((a.split("=", 1)[1] for a in reversed(args) if a.startswith("--config=")), None)
    return path.split(":", 1)[0] if path else None


def run(program: str, define_flags, main) -> None:
    """Defines a command's flags and runs ``main`` under absl with ``flags_parser``, mmjax's status
    lines shown (``show_status_lines``)."""
    define_flags()

    def main_with_status_lines(argv):
        show_status_lines()
        return main(argv)

    app.run(main_with_status_lines, flags_parser=flags_parser(program))


def show_status_lines() -> None:
    """mmjax's status lines (the loggers ``mmjax.*``) go to stderr through absl's handler at INFO,
    or at the level ``--verbosity`` gives (-1: warnings only); Orbax's and XLA's own INFO lines
    stay hidden (``initialize``)."""
    verbosity = flags.FLAGS["verbosity"]
    level = converter.absl_to_standard(verbosity.value) if verbosity.present else pylogging.INFO
    pylogging.getLogger("mmjax").setLevel(level)
    # A command run as `python -m mmjax.<command>` logs as "__main__", not "mmjax.<command>".
    pylogging.getLogger("__main__").setLevel(level)


# The source checkout mmjax runs from, where its configs/ lies beside the package.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _find_sibling_configs(path: str) -> None:
    """Config files import the shipped ones as ``configs.<name>``: the folder above the
    ``--config`` file's folder (``path``, an existing file) goes on ``sys.path``, and so does
    mmjax's checkout where it has ``configs/``, so a command run from anywhere (or as a console
    script) finds its siblings, and a user's own config elsewhere finds the shipped ones.
    ``configs/`` is a folder of files, not an installed package (a namespace package: a user's own
    ``configs/`` folder and the shipped one are read as one)."""
    roots = [os.path.dirname(os.path.dirname(os.path.abspath(path)))]
    if os.path.isdir(os.path.join(_CHECKOUT, "configs")):
        roots.append(_CHECKOUT)
    for root in reversed(roots):
        if root not in sys.path:
            sys.path.insert(0, root)


def flags_parser(program: str):
    """An ``app.run`` flags parser that reports a bad ``--config.key=value`` override as one line.

    ml_collections raises AttributeError/KeyError (unknown key) or TypeError/ValueError (wrong
    type) from inside flag parsing, which absl would otherwise print as a chained traceback.
    """

    def parse(argv):
        path = _config_file(argv[1:])
        if path and not os.path.isfile(path):  # ml_collections would fail later, with a traceback
            print(f"{program}: error: --config={path}: no such config file", file=sys.stderr)
            sys.exit(2)
        if path:
            _find_sibling_configs(path)
        try:
            return flags.FLAGS([argv[0]] + [_underscored(a) for a in argv[1:]])
        except flags.Error as e:
            print(f"{program}: error: {e}\nPass --helpfull to see the flags.", file=sys.stderr)
        except (AttributeError, KeyError) as e:
            print(f"{program}: error: {unknown_key_message(e, argv[1:], _config_of(path))}", file=sys.stderr)
        except (TypeError, ValueError) as e:
            print(f"{program}: error: bad config override: {e}", file=sys.stderr)
        except ImportError as e:  # the config file's own imports
            print(f"{program}: error: --config={path}: {e}", file=sys.stderr)
        sys.exit(2)

    return parse


def _underscored(arg: str) -> str:
    """``--input-only`` -> ``--input_only``: flags may be spelt with hyphens, as in most CLIs.
    Only the flag name changes; ``--config.*`` overrides and values are left as they are."""
    if not arg.startswith("--") or arg.startswith("--config"):
        return arg
    name, sep, value = arg[2:].partition("=")
    return "--" + name.replace("-", "_") + sep + value
