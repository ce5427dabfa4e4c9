"""Measurements of a config (``python -m mmjax.benchmark``): parameters per module, the
machine's matmul peak, the input pipeline's throughput, and the compiled train and eval steps'
time, FLOPs and memory. Step latencies are medians, because shared machines are noisy; the train
step's throughput is the mean over one run of steps dispatched back to back."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from mmjax import inputs, setup as setup_lib, sharding
from mmjax.models import model as model_lib


def parameter_counts(params: Mapping, depth: int = 2) -> dict[str, int]:
    """"module/child" -> number of parameters beneath it, for every entry of the parameter tree
    down to ``depth`` levels (parents before their children), then "total".

    params: nested mapping whose leaves have a ``shape`` (arrays or jax.ShapeDtypeStruct).
    """
    counts: dict[str, int] = {}

    def visit(tree, path: str, level: int) -> int:
        if level <= depth:
            counts[path] = 0  # placeholder: keeps a parent before its children
        if isinstance(tree, Mapping):
            n = sum(visit(value, f"{path}/{key}", level + 1) for key, value in tree.items())
        else:
            n = math.prod(tree.shape)
        if level <= depth:
            counts[path] = n
        return n

    total = sum(visit(value, key, 1) for key, value in params.items())
    return {**counts, "total": total}


def format_parameter_counts(counts: Mapping[str, int]) -> str:
    """One line per entry, indented by its depth, counts right-aligned."""
    names = ["  " * path.count("/") + path.rsplit("/", 1)[-1] for path in counts]
    width = max(map(len, names)) + 2
    return "\n".join(f"{name:<{width}}{n:>12,}" for name, n in zip(names, counts.values()))


def matmul_peak_flops(dtype=jnp.float32, size: int | None = None, repeats: int = 5, chain: int | None = None) -> float:
    """Measured FLOP/s of a jitted size^3 matmul in ``dtype`` on the default device (median of
    ``repeats`` calls); size 2048 on a CPU, 8192 on an accelerator (large enough to reach its
    peak). Each call chains ``chain`` products (default 1 on a CPU, 10 on an accelerator, where
    one product takes ~1.5 ms and a call's dispatch and sync would otherwise count against it)."""
    accelerator = jax.default_backend() != "cpu"
    size, chain = size or (8192 if accelerator else 2048), chain or (10 if accelerator else 1)
    a = jax.random.normal(jax.random.key(0), (size, size), dtype) / np.sqrt(size).astype(dtype)  # norms stay ~1
    matmul = jax.jit(lambda x: jax.lax.fori_loop(0, chain, lambda _, y: y @ x, x))
    matmul(a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * size**3 * chain / float(np.median(times))


def input_pipeline(config, manifest, batches: int) -> dict:
    """Windows (and utterances) per second this host's pipeline delivers: in the first epoch
    (``first_epoch_*``: every dialogue read, decoded and padded; timed after one warm-up batch)
    and once an epoch has been read (the padded windows cached, ``data.cache_mb``: what the
    rest of training sees), each over ``batches`` batches."""
    data = iter(inputs.train_dataset(config, manifest, jax.process_index(), jax.process_count()))
    per_host = len(next(data)["turn_mask"])

    def rate(count):
        start, utterances = time.perf_counter(), 0
        for _ in range(count):
            utterances += int(next(data)["turn_mask"].sum())
        seconds = time.perf_counter() - start
        return count * per_host / seconds, utterances / seconds

    first_windows, first_utterances = rate(batches)
    epoch = -(-len(inputs.window_source(config, manifest, "train")) // (per_host * jax.process_count()))
    for _ in range(max(0, epoch - batches)):  # the rest of the first epoch
        next(data)
    windows, utterances = rate(batches)
    return {"windows_per_second": windows, "utterances_per_second": utterances,
            "first_epoch_windows_per_second": first_windows, "first_epoch_utterances_per_second": first_utterances}


def _timed(step, batches, steps: int, warmup: int) -> dict:
    """Median seconds (and p10/p90) of ``step(batch)`` over ``steps`` calls after ``warmup``, each
    synced; ``step`` cycles through ``batches``. Adds utterances, real text tokens (not padding)
    and windows per second of those batches at that median (``_rates``)."""
    times = []
    for i in range(steps + warmup):
        start = time.perf_counter()
        jax.block_until_ready(step(batches[i % len(batches)]))
        if i >= warmup:
            times.append(time.perf_counter() - start)
    median = float(np.median(times))
    return {"median_step_seconds": median,
            "step_seconds_p10_p90": [float(np.percentile(times, 10)), float(np.percentile(times, 90))],
            **_rates(batches, median)}


def _rates(batches, seconds_per_step: float) -> dict:
    """Utterances, real text tokens (not padding) and windows per second, at ``seconds_per_step``
    for the mean batch of ``batches``."""
    def mean(key: str) -> float:  # per batch: how many of ``key``'s mask entries are set
        return float(np.mean([np.asarray(b[key]).sum() for b in batches])) if key in batches[0] else 0.0

    return {"utterances_per_second": mean("turn_mask") / seconds_per_step,
            "real_tokens_per_second": mean("token_mask") / seconds_per_step,
            "windows_per_second": len(batches[0]["turn_mask"]) / seconds_per_step}


def _pipelined(step, batches, steps: int) -> dict:
    """Seconds per step over ``steps`` calls of ``step`` dispatched back to back and synced once
    at the end, with the rates at it (``_rates``): what training sees, since the trainer syncs
    only to log and the host dispatches the next step while the device runs this one. The
    synced median of ``_timed`` adds the host's dispatch and sync to every step, which on an
    accelerator is a share of the step (an H200's kernels were busy 47 ms of a 62 ms synced step).
    One run, its mean: the steps overlap, so single steps have no time of their own."""
    start = time.perf_counter()
    outputs = [step(batches[i % len(batches)]) for i in range(steps)]
    # Every output still alive: a train step's state was donated to the next step, which is waited on.
    jax.block_until_ready([x for x in jax.tree.leaves(outputs) if not getattr(x, "is_deleted", lambda: False)()])
    seconds = (time.perf_counter() - start) / steps
    return {"pipelined_step_seconds": seconds, **_rates(batches, seconds)}


def train_and_eval_steps(config, s, steps: int, warmup: int) -> dict:
    """The compiled train step's timings on prefetched training batches (latency: the synced
    median, ``_timed``; throughput: one run of ``steps`` steps dispatched back to back,
    ``_pipelined``), with its compile seconds, matmul FLOP and memory figures (of the largest
    batch shape, ``s.batch_shapes``) and achieved FLOP/s (the timed batches' own FLOPs: packed
    text makes them smaller); and the eval step's synced timings on up to 8 validation batches of
    ``config.eval_batch_size`` windows."""
    start = time.perf_counter()
    compiled, stats = setup_lib.compile_train_step(s, config)
    stats["compile_seconds"] = time.perf_counter() - start
    state = setup_lib.initial_state(s)
    data = iter(inputs.train_dataset(config, s.manifest, jax.process_index(), jax.process_count()))
    batches = [sharding.global_batch(next(data), s.mesh) for _ in range(min(steps + warmup, 8))]

    def train(batch):
        nonlocal state
        state, metrics = compiled(state, batch)
        return state, metrics

    # Warm-up runs every batch at least once: packed text compiles one program per row count.
    # Throughput (rates, achieved FLOP/s) at the pipelined step time; latency from the synced one.
    result = {**_timed(train, batches, steps, max(warmup, len(batches))), **_pipelined(train, batches, steps), **stats}
    flops = [compiled.flops(b) for b in batches]  # packed text: the timed batches' own shapes
    if all(flops):
        result["achieved_flops_per_second"] = float(np.mean(flops)) / result["pipelined_step_seconds"]
    validation = inputs.eval_batches(config, s.manifest, "validation", jax.process_index(), jax.process_count())
    eval_batches = [sharding.global_batch(b, s.mesh) for b, _ in zip(validation, range(8))]
    eval_step = setup_lib.jit_eval_step(s)
    # Eval stays synced: evaluation fetches each batch's outputs before the next.
    with sharding.activate(s.mesh, s.rules):
        evaluation = _timed(lambda batch: eval_step(state.params, batch), eval_batches, steps,
                            max(warmup, len(eval_batches)))
    return result, evaluation


def measure(config, s: setup_lib.Setup, steps: int, warmup: int, input_batches: int, input_only: bool = False) -> dict:
    """What ``python -m mmjax.benchmark`` prints: the input pipeline's throughput and, unless
    ``input_only``, the train and eval steps' (``train_and_eval_steps``) with the utilisation of
    the matmul peak measured in the model's dtype, and the pipeline's ratio to the step's need."""
    results = {"devices": f"{jax.device_count()} x {jax.devices()[0].device_kind}", "batch_size": config.batch_size,
               "input": input_pipeline(config, s.manifest, input_batches)}
    if input_only:
        return results
    step, evaluation = train_and_eval_steps(config, s, steps, warmup)
    results["step"], results["eval_step"] = step, evaluation
    results["matmul_dtype"] = config.model.dtype
    results["matmul_peak_flops_per_second"] = matmul_peak_flops(model_lib.DTYPES[config.model.dtype])
    if "achieved_flops_per_second" in step:  # the whole step's FLOPs, over every device's peak
        step["utilisation_of_matmul_peak"] = step["achieved_flops_per_second"] / (
            results["matmul_peak_flops_per_second"] * jax.device_count())
    for prefix in ("", "first_epoch_"):
        results["input"][f"{prefix}ratio_to_step_consumption"] = (
            results["input"][f"{prefix}windows_per_second"] * jax.process_count() / step["windows_per_second"])
    return results
