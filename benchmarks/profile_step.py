"""Where a compiled step spends its time: a profiler trace of the train (or eval) step, each XLA
operation's time attributed to the model code that produced it::

    python benchmarks/profile_step.py --config=configs/soft_share.py [--step=eval] [--steps=6] [--depth=3]

It compiles the step as ``mmjax.benchmark`` does (``setup.compile_train_step`` /
``setup.jit_eval_step``), runs it a few times untimed, then traces ``--steps`` steps with
``jax.profiler.trace``. Each traced operation (an XLA fusion, dot, copy, ...) is matched by name to
the compiled program's HLO, whose metadata holds the JAX operation it came from
(``jit(train_step)/jvp(AffectModel)/audio_encoder/layer_0/...``), and its time is summed by

* phase: ``forward`` (under ``jvp``, or the eval step's model call), ``backward`` (under
  ``transpose(jvp``) or ``update`` (the rest: the loss's glue, clipping and the optimizer; in the
  eval step, its metrics);
* the model path cut to ``--depth`` parts (``audio_encoder/layer_0/attention``);
* the kind of operation (the XLA name without its number: ``ynn_fusion``, ``transpose_copy_fusion``).

A fusion counts where its root operation came from: a matmul fused with the normalisation after
it is booked to the normalisation. On a CPU it reads the XLA operations on the host's threads,
where the CPU backend runs them; on an accelerator the kernels on its device planes, each booked
to the HLO instruction that launched it (XLA:GPU's command buffers are turned off for this: a
CUDA graph would show as one event that names no instruction).

It also reports the wall time per traced step, the operations per step and how busy each of
XLA's threads (an accelerator's streams) was: a step whose threads are busy for a fraction of its
wall time waits on dispatch and dependencies, not on arithmetic. Times are per step, summed over threads, so they
can exceed the wall time. The trace costs time itself: read the shares, not the absolute values.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import re
import tempfile
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from mmjax import cli, inputs, prepared_records, setup as setup_lib, sharding

PROGRAM = "benchmarks/profile_step.py"
PHASES = (("transpose(jvp(", "backward"), ("jvp(", "forward"))  # first match wins
# Trace events that are not one XLA operation: the executor's own spans and host-side calls.
_NOT_OPERATIONS = re.compile(r"ThunkExecutor|SlinkyThreadPool|ThreadpoolListener|^end: |^\$|Pjit|PjRt|Execute|"
                             r"ParseArguments|Handle inputs|Rendezvous|^Wait")
_HLO_LINE = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = [^\n]*?metadata=\{[^}\n]*?op_name="([^"]+)"', re.M)


def operation_sources(hlo_text: str) -> dict[str, str]:
    """Instruction name -> the JAX op_name its metadata records, for every instruction of the
    compiled HLO text that has one (fusions carry their root's)."""
    return {m.group(1): m.group(2) for m in _HLO_LINE.finditer(hlo_text)}


def attribute(op_name: str | None, depth: int, model: str) -> tuple[str, str]:
    """(phase, model path cut to ``depth`` parts) of an HLO op_name, for a model whose class is
    named ``model``; ("update", "(unattributed)") without an op_name."""
    if not op_name:
        return "update", "(unattributed)"
    parts = op_name.lstrip("(").split("/")  # "(transpose(jvp(...": a name XLA merged from several
    if parts[0].startswith("jit("):
        parts = parts[1:]  # the jitted function's own name
    phase = "update"
    if parts and parts[0] == model:  # the eval step's forward pass
        phase, parts = "forward", parts[1:]
    elif parts:  # the train step's: jvp(AffectModel), and its backward: transpose(jvp(AffectModel))
        for prefix, name in PHASES:
            if parts[0].startswith(prefix):
                phase, parts = name, parts[1:]
                break
    return phase, "/".join(parts[:depth]) or "(top level)"


def summarise(events, sources: dict[str, str], steps: int, depth: int, model: str) -> dict:
    """Per-step milliseconds by phase, model path and operation kind, operations per step and busy
    milliseconds per thread, from ``events``: (thread, operation name, duration ns) of ``steps``
    traced steps."""
    by_phase, by_path, by_kind = collections.Counter(), collections.Counter(), collections.Counter()
    busy, ops_by_phase = collections.Counter(), collections.Counter()
    for thread, name, ns in events:
        ms = ns / 1e6 / steps
        phase, path = attribute(sources.get(name), depth, model)
        by_phase[phase] += ms
        ops_by_phase[phase] += 1 / steps
        by_path[f"{phase}: {path}"] += ms
        by_kind[re.sub(r"\.\d+$", "", name)] += ms
        busy[thread] += ms
    return {"operations_per_step": len(events) / steps, "operations_by_phase": dict(ops_by_phase.most_common()),
            "busy_ms_per_thread": dict(busy),
            "ms_by_phase": dict(by_phase.most_common()), "ms_by_path": dict(by_path.most_common()),
            "ms_by_kind": dict(by_kind.most_common())}


# Lines of an accelerator's plane that the profiler derives from the kernels (summaries, not kernels).
_DERIVED_LINES = {"XLA Modules", "XLA Ops", "XLA TraceMe", "Steps", "Framework Name Scope", "Framework Ops",
                  "Source code", "Launch Stats", "TensorFlow Name Scope", "TensorFlow Ops"}


def _stat(event, name: str):
    return next((value for key, value in event.stats if key == name), None)


def operations(data, backend: str) -> list[tuple[str, str, int]]:
    """(thread or stream, XLA operation name, duration ns) of every XLA operation in a trace
    (``jax.profiler.ProfileData``): on a CPU the events of the host's threads (not the trace's
    own, ``_NOT_OPERATIONS``); on an accelerator its kernels on the device planes, each named by
    the HLO instruction that launched it (its ``hlo_op`` statistic)."""
    if backend == "cpu":
        return [(line.name, event.name, event.duration_ns) for plane in data.planes if plane.name.startswith("/host")
                for line in plane.lines if line.name != "python"
                for event in line.events if not _NOT_OPERATIONS.search(event.name)]
    return [(line.name, _stat(event, "hlo_op") or event.name, event.duration_ns)
            for plane in data.planes if plane.name.startswith("/device:")
            for line in plane.lines if line.name not in _DERIVED_LINES for event in line.events]


def trace_events(step, batches, steps: int, trace_dir: str | None = None) -> tuple[list[tuple[str, str, int]], float]:
    """Runs ``step`` on ``batches`` (cycled) ``steps`` times under the profiler: the XLA operations
    traced (``operations``), and the wall seconds per step. ``trace_dir`` keeps the trace."""
    with tempfile.TemporaryDirectory() as scratch:
        logdir = trace_dir or scratch
        start = time.perf_counter()
        with jax.profiler.trace(logdir):
            for i in range(steps):
                jax.block_until_ready(step(batches[i % len(batches)]))
        wall = (time.perf_counter() - start) / steps
        data = jax.profiler.ProfileData.from_file(sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1])
        events = operations(data, jax.default_backend())
    return events, wall


def profile(config, kind: str, steps: int, depth: int, warmup: int = 3, devices=None,
            trace_dir: str | None = None) -> dict:
    """The summary of ``steps`` traced train (``kind="train"``) or eval steps (module docstring) on
    ``devices`` (default: all); ``trace_dir`` keeps the trace (TensorBoard's profile plugin, Perfetto)."""
    manifest = prepared_records.load_or_prepare(config)
    s = setup_lib.build(config, devices, manifest=manifest)
    state = setup_lib.initial_state(s)
    if kind == "train":
        data = iter(inputs.train_dataset(config, manifest, jax.process_index(), jax.process_count()))
        batches = [sharding.global_batch(next(data), s.mesh) for _ in range(3)]
        train, _ = setup_lib.compile_train_step(s, config)
        executables = [train.executable(b) for b in batches]  # one per batch shape (packed text)

        def step(batch):
            nonlocal state
            state, metrics = train(state, batch)
            return state, metrics
    else:
        eval_batches = inputs.eval_batches(config, manifest, "validation", jax.process_index(), jax.process_count())
        batches = [sharding.global_batch(b, s.mesh) for b, _ in zip(eval_batches, range(3))]
        with sharding.activate(s.mesh, s.rules):
            evaluate = setup_lib.jit_eval_step(s)
            executables = [evaluate.lower(state.params, b).compile() for b in batches]

        def step(batch):
            with sharding.activate(s.mesh, s.rules):
                return evaluate(state.params, batch)
    for i in range(warmup):
        jax.block_until_ready(step(batches[i % len(batches)]))
    events, wall = trace_events(step, batches, steps, trace_dir)
    sources = {name: op for e in executables for name, op in operation_sources(e.as_text()).items()}
    summary = summarise(events, sources, steps, depth, type(s.model).__name__)
    return {"step": kind, "traced_steps": steps, "wall_ms_per_step": wall * 1e3, **summary}


def format_profile(result: dict, top: int) -> str:
    lines = [f"{result['step']} step: {result['wall_ms_per_step']:.1f} ms wall per traced step, "
             f"{result['operations_per_step']:.0f} XLA operations per step",
             "busy per XLA thread: " + ", ".join(f"{ms:.1f} ms" for ms in result["busy_ms_per_thread"].values()
                                                 if ms >= 0.5),
             "by phase: " + ", ".join(f"{p} {ms:.1f} ms ({result['operations_by_phase'][p]:.0f} operations)"
                                      for p, ms in result["ms_by_phase"].items())]
    for title, key in (("by model path", "ms_by_path"), ("by operation kind", "ms_by_kind")):
        lines.append(f"{title} (top {top}), ms per step:")
        lines += [f"  {ms:9.2f}  {name}" for name, ms in list(result[key].items())[:top]]
    return "\n".join(lines)


def _define_flags():
    config_flags.DEFINE_config_file("config", None, "Path to a config file.", lock_config=True)
    flags.DEFINE_enum("step", "train", ["train", "eval"], "The step to profile.")
    flags.DEFINE_integer("steps", 6, "Traced steps (after 3 untimed ones).", lower_bound=1)
    flags.DEFINE_integer("depth", 3, "Parts of the model path to group by (audio_encoder/layer_0/attention: 3).",
                         lower_bound=1)
    flags.DEFINE_integer("top", 25, "Rows printed per table.", lower_bound=1)
    flags.DEFINE_string("json", None, "Also write the whole summary to this JSON file.")
    flags.DEFINE_string("trace_dir", None, "Keep the profiler trace in this directory.")
    flags.mark_flags_as_required(["config"])


def one_kernel_per_operation(xla_flags: str) -> str:
    """XLA_FLAGS with XLA:GPU's command buffers off, unless the user set them: XLA:GPU replays runs
    of kernels as one CUDA graph, which a trace shows as a single ``command_buffer_N`` event with
    no HLO instruction to book it to (an H200 trace of the large step: 100% in ``command_buffer_1``)."""
    if "xla_gpu_enable_command_buffer" in xla_flags:
        return xla_flags
    return f"{xla_flags} --xla_gpu_enable_command_buffer=".strip()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    os.environ["XLA_FLAGS"] = one_kernel_per_operation(os.environ.get("XLA_FLAGS", ""))  # before any backend starts
    cli.initialize()
    FLAGS = flags.FLAGS
    with cli.user_errors(PROGRAM):
        result = profile(FLAGS.config, FLAGS.step, FLAGS.steps, FLAGS.depth, trace_dir=FLAGS.trace_dir)
    result["config"] = config_flags.get_config_filename(FLAGS["config"])
    print(format_profile(result, FLAGS.top))
    if FLAGS.json:
        with open(FLAGS.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    cli.run(PROGRAM, _define_flags, main)
