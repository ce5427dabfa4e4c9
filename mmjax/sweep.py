"""Choose hyperparameters on the validation split: train a grid of config overrides and rank them::

    python -m mmjax.sweep --config=configs/cmma.py --workdir=runs/cmma_sweep \\
        --grid=learning_rate=1e-3,3e-3 --grid=model.dropout=0.1,0.3 --seeds=0,1 [--config.key=value ...]

Every combination of the ``--grid`` values (``key=v1,v2,...``; a value holding commas goes in
brackets or quotes, e.g. ``model.modalities=("text",),("text","audio")``) is trained with each seed
in ``<workdir>/<NN>_<overrides>_s<seed>`` by ``mmjax.train``'s code, so a run already there is
resumed or, when finished, only read. Points are ranked by the mean over their seeds of each
run's held-out score (``selection.held_out_score``: the run's checkpoint selection made on half
of the validation dialogues, scored on the other half, over random halvings), which carries none
of the optimism of a best checkpoint's score read on the split that chose it; runs that saved no
validation rows are ranked by that best score (the checkpoint ``evaluate --step=best`` picks, by
``config.selection_metric``; under per-task selection, the mean of each task's best). The test
split is never read. Writes ``<workdir>/sweep.json`` (per point: overrides, per seed the best step,
its score, per-task validation scores and the held-out score; means and standard deviations) and
prints the points ranked, with the command that trains the best one.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import re
import shlex
import sys
from collections.abc import Sequence

import jax
import numpy as np
from absl import app, flags
from etils import epath
from ml_collections import config_flags

from mmjax import atomic, checkpointing, cli, selection, trainer
from mmjax.errors import ConfigError, MmjaxError

_log = logging.getLogger(__name__)  # status lines; shown by the commands (mmjax.cli)

RESULTS = "sweep.json"


def split_values(text: str) -> list[str]:
    """``"1e-3,(1,2),'a,b'"`` -> ``["1e-3", "(1,2)", "'a,b'"]``: commas inside brackets or quotes
    do not separate values."""
    values, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append(text[start:i].strip())
            start = i + 1
    values.append(text[start:].strip())
    return values


def _current(config, key: str):
    node = config
    for part in key.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError):
            raise ConfigError(f"--grid={key}=...: {key!r} is not a key of the config") from None
    return node


def parse_value(key: str, text: str, current):
    """``text`` as a value for the config key ``key`` whose value is now ``current`` (its type
    decides: booleans true/false, numbers, strings as given, tuples as Python literals)."""
    def bad(expected: str):
        return ConfigError(f"--grid={key}=...: {text!r} is not {expected} (the config's value is {current!r})")

    if isinstance(current, bool):
        if text.lower() not in ("true", "false"):
            raise bad("true or false")
        return text.lower() == "true"
    if isinstance(current, str):
        return ast.literal_eval(text) if text[:1] in "'\"" and text[:1] == text[-1:] and len(text) > 1 else text
    try:
        value = ast.literal_eval(text)
    except (SyntaxError, ValueError):
        if current is None:
            return text
        raise bad(f"a Python literal of type {type(current).__name__}") from None
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
        return tuple(value)
    if current is not None and not isinstance(value, type(current)):
        raise bad(f"a {type(current).__name__}")
    return value


# Keys whose values the validation ranking cannot compare fairly.
_NOT_RANKABLE = {
    "checkpoint_selection": "per_task ranks by the mean of each task's best validation score, never below the best "
                            "joint mean of the same run: the ranking would favour it whatever it does on unseen "
                            "data (compare the two with benchmarks/selection_transfer.py)",
    "selection_metric": "each value ranks the points by a different score"}


def parse_grid(specs: Sequence[str], config) -> list[tuple[str, list]]:
    """``["lr=1e-3,3e-3", ...]`` -> ``[("lr", [0.001, 0.003]), ...]``, each value typed by ``config``."""
    grid, seen = [], set()
    for spec in specs:
        key, sep, values = spec.partition("=")
        key = key.strip()
        if not sep or not key or not values.strip():
            raise ConfigError(f"--grid={spec!r}: expected KEY=VALUE[,VALUE...]")
        if key in seen:
            raise ConfigError(f"--grid: {key!r} is given twice")
        if key == "seed":
            raise ConfigError("--grid=seed=...: give seeds with --seeds (each point is trained with every seed)")
        if key in _NOT_RANKABLE:
            raise ConfigError(f"--grid={key}=...: {_NOT_RANKABLE[key]}")
        seen.add(key)
        current = _current(config, key)
        grid.append((key, [parse_value(key, v, current) for v in split_values(values)]))
    return grid


def points(grid: Sequence[tuple[str, list]]) -> list[dict]:
    """Every combination of the grid's values: ``[{key: value, ...}, ...]`` (cartesian product)."""
    keys = [k for k, _ in grid]
    return [dict(zip(keys, combo)) for combo in itertools.product(*[v for _, v in grid])]


def point_name(index: int, overrides: dict) -> str:
    """A directory name for a point: its index and overrides (a tuple's items joined by '+'),
    characters outside [\\w.=,+-] as '_'."""
    text = ",".join(f"{k}={'+'.join(map(str, v)) if isinstance(v, (tuple, list)) else v}" for k, v in overrides.items())
    return f"{index:02d}_" + re.sub(r"[^\w.=,+-]", "_", text)[:120]


def with_overrides(config, overrides: dict):
    """A copy of ``config`` with ``overrides`` ({dotted key: value}) set."""
    config = config.copy_and_resolve_references()
    for key, value in overrides.items():
        *parents, last = key.split(".")
        node = config
        for part in parents:
            node = node[part]
        try:
            node[last] = value
        except (TypeError, ValueError) as e:
            raise ConfigError(f"--grid={key}={value!r}: {e}") from None
    return config


def best_validation(workdir: str, config) -> dict | None:
    """The best checkpoint of a trained run: {"step", "score", "tasks": {task/score: value}}, from
    its checkpoints' ranking and the validation lines of ``metrics.jsonl``. Under per-task
    selection (``config.checkpoint_selection``): each task's best step ({task: step}), the mean of
    their scores, and each task's scores at its step. Called on every process (Orbax's manager
    synchronises them); process 0, which wrote ``metrics.jsonl``, returns it, the others None."""
    mngr = checkpointing.manager(workdir, create=False)
    try:
        if checkpointing.per_task_selection(config):
            best = checkpointing.best_task_scores(mngr, config.tasks)
            steps, score = {t: step for t, (step, _) in best.items()}, float(np.mean([v for _, v in best.values()]))
        else:
            step = checkpointing.best_step(mngr)
            steps, score = dict.fromkeys(config.tasks, step), None
    finally:
        mngr.close()
    if jax.process_index() != 0:
        return None
    path = epath.Path(workdir) / "metrics.jsonl"
    if None in steps.values() or not path.exists():
        raise MmjaxError(f"{workdir!r} has no validated checkpoint to rank")
    validated = {}
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("split") == "validation":
            validated[entry["step"]] = entry
    missing = sorted(set(steps.values()) - set(validated))
    if missing:
        raise MmjaxError(f"{path} has no validation line for the best checkpoint, step {missing[0]}")
    tasks = {k: v for t, at in steps.items() for k, v in validated[at].items()
             if k.startswith(f"{t}/") and "/loss" not in k}
    if score is None:
        (step,) = set(steps.values())
        return {"step": step, "score": validated[step]["score"], "tasks": tasks}
    return {"step": steps, "score": score, "tasks": tasks}


def summarise(overrides: dict, runs: list[dict]) -> dict:
    """A point's mean and std over its runs of the best validation score and, where every run has
    one, of the held-out score (``held_out_mean``, ``held_out_std``): the one it is ranked by."""
    out = {"overrides": overrides, "runs": runs}
    for key, prefix in (("score", ""), ("held_out", "held_out_")):
        scores = [r.get(key) for r in runs]
        if None not in scores:
            out.update({f"{prefix}mean": float(np.mean(scores)),
                        f"{prefix}std": float(np.std(scores, ddof=1)) if len(scores) > 1 else 0.0})
    return out


def ranking_key(points: list[dict]) -> str:
    """The summary key the points rank by: "held_out_mean" where every point has one (a run trained
    before validation rows were saved has none, and the two scores do not compare), else "mean"."""
    return "held_out_mean" if all("held_out_mean" in p for p in points) else "mean"


def rank_points(points: list[dict]) -> list[dict]:
    """The points, best first by ``ranking_key``."""
    key = ranking_key(points)
    return sorted(points, key=lambda p: -p[key])


def sweep(config, workdir: str, grid_specs: Sequence[str], seeds: Sequence[int]) -> list[dict]:
    """Trains every point of the grid with every seed; returns the points best first
    (``rank_points``). ``<workdir>/sweep.json`` holds the ranking of the points done so far."""
    grid = parse_grid(grid_specs, config)
    todo = points(grid)
    for overrides in todo:  # every point is built (not run) before the first trains: a bad value fails now
        trainer.build_checked(with_overrides(config, overrides))
    results = []
    for i, overrides in enumerate(todo):
        name, runs = point_name(i, overrides), []
        for seed in seeds:
            run_dir = str(epath.Path(workdir) / f"{name}_s{seed}")
            if jax.process_index() == 0:
                _log.info(f"sweep point {i + 1}/{len(todo)}, seed {seed}: {overrides} -> {run_dir}")
            run_config = with_overrides(config, {**overrides, "seed": seed})
            trainer.train_and_evaluate(run_config, run_dir)
            best = best_validation(run_dir, run_config)
            if jax.process_index() == 0:
                held_out = selection.held_out_score(run_dir, run_config)
                runs.append({"seed": seed, "workdir": run_dir, **best, "held_out": held_out})
                _log.info(f"best validation score {best['score']:.4f} at step {best['step']}" + (
                    "" if held_out is None else f"; selected on half the validation dialogues, scored on the other "
                    f"half: {held_out:.4f}"))
        if jax.process_index() == 0:
            results.append(summarise(overrides, runs))
            atomic.write_atomically(epath.Path(workdir) / RESULTS, lambda f: json.dump(
                {"grid": [[k, v] for k, v in grid], "seeds": list(seeds), "points": rank_points(results)}, f, indent=1,
                default=str))
    return rank_points(results)


def override_flag(key: str, value) -> str:
    """``--config.key=value`` as a shell word that ``mmjax.train`` parses back to ``value``."""
    return shlex.quote(f"--config.{key}={value if isinstance(value, str) else repr(value)}")


def format_ranking(ranked: list[dict], metric: str) -> str:
    """The points, best first: mean ± std over seeds in percent (reports such as ``mmjax.evaluate``'s
    keep fractions) of the held-out score where they rank by it and of the best validation score,
    and the overrides; the first line says what the scores are."""
    held_out = ranking_key(ranked) == "held_out_mean"
    lines = [f"validation score: the mean over tasks of {metric} (Pearson r for a regression task), in %; "
             + ("ranked by the held-out score: each run's checkpoint selected on a random half of the validation "
                f"dialogues and scored on the other half, mean of {selection.HALVINGS} halvings (the best score "
                "is read on the split that selected it, so it is optimistic and favours noisy settings)"
                if held_out else "ranked by the best score"),
             f"{'rank':>4}  {'held-out score (%)':>20}  {'best score (%)':>20}  overrides" if held_out else
             f"{'rank':>4}  {'validation score (%)':>24}  overrides"]

    def spread(r, prefix=""):
        mean, std = 100 * r[f"{prefix}mean"], 100 * r[f"{prefix}std"]
        return f"{mean:.2f} ± {std:.2f}" if len(r["runs"]) > 1 else f"{mean:.2f}"

    for rank, r in enumerate(ranked, 1):
        flags = " ".join(override_flag(k, v) for k, v in r["overrides"].items())
        lines.append(f"{rank:>4}  {spread(r, 'held_out_'):>20}  {spread(r):>20}  {flags}" if held_out else
                     f"{rank:>4}  {spread(r):>24}  {flags}")
    return "\n".join(lines)


def argv_overrides(args: Sequence[str]) -> list[str]:
    """The ``--config.key=value`` flags among command-line ``args`` (a value given as the next word joined)."""
    flags_, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--config."):
            if "=" not in arg and i + 1 < len(args) and not args[i + 1].startswith("-"):
                arg, i = f"{arg}={args[i + 1]}", i + 1
            flags_.append(arg)
        i += 1
    return flags_


def _define_flags():
    """Defined only when the command runs, so that command modules can be imported together."""
    config_flags.DEFINE_config_file("config", None, "Path to a config file with get_config().", lock_config=True)
    flags.DEFINE_string("workdir", None, "Directory for the sweep's runs and sweep.json.")
    flags.DEFINE_multi_string("grid", None, "KEY=VALUE[,VALUE...]: a config key and the values to try; repeat "
                                          "for more keys (every combination is trained).")
    flags.DEFINE_list("seeds", ["0"], "Seeds to train each point with.")
    flags.mark_flags_as_required(["config", "workdir", "grid"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    cli.initialize()
    f = flags.FLAGS
    with cli.user_errors("mmjax.sweep"):
        try:
            seeds = [int(s) for s in f.seeds]
        except ValueError:
            raise ConfigError(f"--seeds={','.join(f.seeds)}: expected integers") from None
        ranked = sweep(f.config, f.workdir, f.grid, seeds)
    if jax.process_index() == 0:
        print(format_ranking(ranked, f.config.get("selection_metric", "macro_f1")))
        given = [shlex.quote(a) for a in argv_overrides(sys.argv[1:])]  # the sweep's own --config.X flags
        best = " ".join(given + [override_flag(k, v) for k, v in ranked[0]["overrides"].items()])
        config_file = config_flags.get_config_filename(f["config"])
        print(f"\nbest on validation; train it with:\n  python -m mmjax.train --config={config_file} "
              f"--workdir=WORKDIR {best}\nwrote {epath.Path(f.workdir) / RESULTS}")


def command():
    """The ``mmjax-sweep`` console script (``python -m mmjax.sweep``)."""
    cli.run("mmjax.sweep", _define_flags, main)


if __name__ == "__main__":
    command()
