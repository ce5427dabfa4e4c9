"""Matmul FLOPs of a traced program, counted on its jaxpr: the same count on every backend.

XLA's cost analysis depends on the backend: XLA:GPU leaves out the matmuls it hands to cuBLAS, so
an H200 reported 0.42 TFLOP for a ``configs/base.py`` step whose matmuls alone are 3.9 (on jax
0.11 the lowered program's analysis runs on the GPU backend too). Utilisation of the matmul peak needs the
matmul FLOPs the model asks for, whoever runs them: every ``dot_general`` and convolution, forward
and backward (``jax.grad`` is traced into the jaxpr), inside scans times their length. Not
counted: elementwise work, and fused kernels that are one primitive in the jaxpr. So with
``model.attention="dot_product"`` on an NVIDIA GPU, where the attention is cuDNN's kernel, the
count leaves out the attention's products (~1.4% of ``base``'s FLOPs at 32 tokens), which it
counts wherever that attention runs as XLA's ``dot_general``s. A ``shard_map`` body would count
at its per-shard shapes (mmjax has none).
"""

from __future__ import annotations

import math

from jax.extend import core


def matmul_flops(jaxpr) -> float:
    """2 · multiply-adds of every matrix product and convolution in ``jaxpr`` (a ``Jaxpr`` or a
    ``ClosedJaxpr``, e.g. ``jax.jit(f).trace(*args).jaxpr``), sub-programs included: a scan's body
    counts ``length`` times, a ``cond`` its costliest branch, a ``while`` body once."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        total += _own_flops(eqn)
        inner = [matmul_flops(j) for j in core.jaxprs_in_params(eqn.params)]
        if not inner:
            continue
        if eqn.primitive.name == "cond":
            total += max(inner)
        else:
            total += sum(inner) * eqn.params.get("length", 1) if eqn.primitive.name == "scan" else sum(inner)
    return total


def _own_flops(eqn) -> float:
    name = eqn.primitive.name
    if name == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval.shape
        return 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    if name == "conv_general_dilated":
        # Each output element sums kernel-window × input-features-per-group products; the kernel's
        # output-feature axis (rhs_spec[0]) is what the output element picks, not summed over.
        # Grouped convolutions need no other factor: the groups already shrink the kernel's input
        # features (feature_group_count) or the output's batch (batch_group_count).
        rhs = eqn.invars[1].aval.shape
        per_output = math.prod(rhs) // rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
        return 2.0 * math.prod(eqn.outvars[0].aval.shape) * per_output
    return 0.0
