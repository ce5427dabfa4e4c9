import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import inputs, prepared_records, setup as setup_lib, sharding, state as state_lib
from mmjax.data import packing
from tests.tiny import tiny_config


def _steps(config, batches):
    s = setup_lib.build(config, jax.devices()[:1])
    state = state_lib.create_state(config.seed, s.model, s.tx, s.batch_shapes, s.mesh, s.rules)
    step, _ = setup_lib.compile_train_step(s, config)
    losses, grad_norms = [], []
    for batch in batches:
        state, metrics = step(state, sharding.global_batch(batch, s.mesh))
        losses.append(float(metrics["loss"]))
        grad_norms.append(float(metrics["grad_norm"]))
    return np.array(losses), np.array(grad_norms), jax.device_get(state.params)


def _batches(config, n=3):
    manifest = prepared_records.load_or_prepare(config)
    data = iter(inputs.train_dataset(config, manifest, 0, 1))
    return [next(data) for _ in range(n)]


@pytest.mark.slow
def test_gradient_accumulation_gives_the_same_update(records_dir):
    config = tiny_config(records_dir)
    batches = _batches(config)
    losses, grad_norms, _ = _steps(config, batches)
    config.grad_accum_steps = 4
    accumulated_losses, accumulated_grad_norms, _ = _steps(config, batches)
    # Same loss and gradient at every step. (Parameters are not compared: Adam divides by
    # sqrt(v), so rounding noise in gradients that are ~0 becomes a full-size update.)
    np.testing.assert_allclose(accumulated_losses, losses, rtol=1e-5)
    np.testing.assert_allclose(accumulated_grad_norms, grad_norms, rtol=1e-4)


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_parameters(records_dir):
    config = tiny_config(records_dir)
    batches = _batches(config)
    losses, _, _ = _steps(config, batches)
    config.model.dtype = "bfloat16"
    bf16_losses, _, params = _steps(config, batches)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    assert np.isfinite(bf16_losses).all()
    np.testing.assert_allclose(bf16_losses, losses, rtol=0.03)


@pytest.mark.slow
def test_moving_average_of_the_params_starts_at_them_and_follows_with_the_warmed_up_decay(records_dir):
    config = tiny_config(records_dir)
    config.ema_decay = 0.99
    s = setup_lib.build(config, jax.devices()[:1])
    state = setup_lib.initial_state(s)
    jax.tree.map(np.testing.assert_array_equal, state.ema_params, state.params)
    step, _ = setup_lib.compile_train_step(s, config)
    previous_ema = jax.device_get(state.ema_params)
    for index, batch in enumerate(_batches(config, 2)):
        state, _ = step(state, sharding.global_batch(batch, s.mesh))
        decay = min(0.99, (1 + index) / (10 + index))  # 0.1, then 0.18: early steps move it fast
        expected = jax.tree.map(lambda e, p: e + (1 - decay) * (p - e), previous_ema, jax.device_get(state.params))
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), jax.device_get(state.ema_params),
                     expected)
        previous_ema = jax.device_get(state.ema_params)
    assert not jax.tree.all(jax.tree.map(np.array_equal, previous_ema, jax.device_get(state.params)))


@pytest.mark.slow
def test_packed_text_trains_like_unpacked_text(records_dir):
    # Same batches, text packed or not: the same losses step after step (no dropout, whose masks
    # follow array positions). The packed batches' row counts differ from the largest shape the
    # step is first compiled for, so this also runs the compilation per batch shape.
    config = tiny_config(records_dir)
    config.model.dropout = 0.0
    batches = _batches(config)
    packed_config = tiny_config(records_dir)
    packed_config.model.dropout, packed_config.data.pack_text = 0.0, True
    packed = [packing.pack(b) for b in batches]
    assert {packing.num_rows(b) for b in packed} - {config.data.max_turns}
    losses, grad_norms, params = _steps(config, batches)
    packed_losses, packed_grad_norms, packed_params = _steps(packed_config, packed)
    np.testing.assert_allclose(packed_losses, losses, rtol=1e-5)
    np.testing.assert_allclose(packed_grad_norms, grad_norms, rtol=1e-4)
    # Adam turns float noise in gradients near zero into steps of up to the learning rate, so
    # parameters agree far inside one step, not to the last digit; attention key biases have a
    # gradient of exactly zero (a softmax ignores what is added to all of a query's scores), so
    # they are all such noise.
    def check(path, a, b):
        if "key_bias" not in jax.tree_util.keystr(path):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5, err_msg=jax.tree_util.keystr(path))
    jax.tree_util.tree_map_with_path(check, packed_params, params)
