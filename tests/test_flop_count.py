"""Matmul FLOPs counted on the jaxpr (mmjax/flop_count.py)."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from mmjax import setup as setup_lib
from mmjax.flop_count import matmul_flops
from tests.tiny import tiny_config


def _count(f, *args):
    traced = jax.jit(f).trace(*args)
    return matmul_flops(traced.jaxpr), traced.lower().cost_analysis()["flops"]


def test_a_matrix_product_is_two_flops_per_multiply_add():
    a, b = jnp.ones((8, 5)), jnp.ones((5, 3))
    assert _count(lambda a, b: jnp.tanh(a @ b), a, b)[0] == 2 * 8 * 5 * 3
    batched = jnp.ones((4, 8, 5)), jnp.ones((4, 5, 3))
    assert _count(lambda a, b: jnp.einsum("bij,bjk->bik", a, b), *batched)[0] == 4 * 2 * 8 * 5 * 3


def test_gradients_and_rematerialised_blocks_are_counted_where_the_jaxpr_runs_them():
    w, x = jnp.ones((16, 16)), jnp.ones((8, 16))
    loss = lambda w, x: jax.checkpoint(lambda x: jnp.tanh(x @ w))(x).sum()
    forward = 2 * 8 * 16 * 16
    assert _count(loss, w, x)[0] == forward
    # the forward product, its recomputation inside the remat, and the products giving each gradient
    assert _count(jax.value_and_grad(loss), w, x)[0] == 3 * forward
    assert _count(jax.value_and_grad(loss, argnums=(0, 1)), w, x)[0] == 4 * forward


def test_a_scan_body_counts_once_per_iteration():
    body = lambda c, w: (jnp.tanh(c @ w), None)
    ours, _ = _count(lambda c, ws: jax.lax.scan(body, c, ws)[0], jnp.ones((8, 16)), jnp.ones((5, 16, 16)))
    assert ours == 5 * 2 * 8 * 16 * 16


def test_a_cond_counts_its_costliest_branch():
    f = lambda p, x: jax.lax.cond(p, lambda x: x @ x @ x, lambda x: x @ x, x)
    assert _count(f, True, jnp.ones((4, 4)))[0] == 2 * 2 * 4 * 4 * 4


def test_convolutions_forward_and_backward_agree_with_xla_s_count_on_the_cpu():
    conv = nn.Conv(16, (3,), padding="SAME")
    x = jnp.ones((4, 20, 8))
    params = conv.init(jax.random.key(0), x)
    ours, _ = _count(lambda p, x: conv.apply(p, x), params, x)
    assert ours == 2 * 4 * 20 * 16 * 3 * 8
    ours, xla = _count(jax.grad(lambda p, x: (conv.apply(p, x) ** 2).sum(), argnums=(0, 1)), params, x)
    assert ours == 3 * 2 * 4 * 20 * 16 * 3 * 8
    assert 0.95 < ours / xla < 1.05  # XLA adds the bias and the squares' elementwise work
    # Grouped: 4 groups of 2 input features; every gradient still sums a 3 x 2 window per output.
    grouped = nn.Conv(8, (3,), feature_group_count=4, use_bias=False)
    params = grouped.init(jax.random.key(0), x)
    ours, _ = _count(jax.grad(lambda p, x: (grouped.apply(p, x) ** 2).sum(), argnums=(0, 1)), params, x)
    assert ours == 3 * 2 * 4 * 20 * 8 * 3 * 2


def test_equations_without_outputs_count_nothing():
    def f(x):
        jax.debug.print("{}", x.sum())
        return x @ x
    assert _count(f, jnp.ones((4, 4)))[0] == 2 * 4 * 4 * 4


def test_the_train_step_counts_fewer_flops_than_xla_which_adds_elementwise_work(records_dir):
    config = tiny_config(records_dir)
    s = setup_lib.build(config, jax.devices()[:1])
    step = jax.jit(setup_lib.train_step.make_train_step(s.model, s.tx, config, None))
    with setup_lib.sharding.activate(s.mesh, s.rules):
        traced = step.trace(s.abstract_state, s.batch_shapes)
        xla = traced.lower().cost_analysis()["flops"]
    # On the CPU, XLA's count of the same program is these matmuls plus the elementwise work.
    assert 0.5 * xla < matmul_flops(traced.jaxpr) <= xla
