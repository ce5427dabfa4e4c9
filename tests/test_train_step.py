import jax
import jax.numpy as jnp
import numpy as np

from mmjax import sharding, state as state_lib, trainer
from mmjax.data import pipeline
from tests.tiny import tiny_config


def _steps(config, batches):
    s = trainer.setup(config, jax.devices()[:1])
    state = state_lib.create_state(config.seed, s.model, s.tx, s.batch_shapes, s.mesh, s.rules)
    step, _ = trainer.compile_train_step(s, config)
    losses, grad_norms = [], []
    for batch in batches:
        state, metrics = step(state, sharding.global_batch(batch, s.mesh))
        losses.append(float(metrics["loss"]))
        grad_norms.append(float(metrics["grad_norm"]))
    return np.array(losses), np.array(grad_norms), jax.device_get(state.params)


def _batches(config, n=3):
    manifest = trainer.load_or_prepare_records(config)
    data = iter(pipeline.train_dataset(config, manifest, 0, 1))
    return [next(data) for _ in range(n)]


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


def test_bfloat16_compute_keeps_float32_parameters(records_dir):
    config = tiny_config(records_dir)
    batches = _batches(config)
    losses, _, _ = _steps(config, batches)
    config.model.dtype = "bfloat16"
    bf16_losses, _, params = _steps(config, batches)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(params))
    assert np.isfinite(bf16_losses).all()
    np.testing.assert_allclose(bf16_losses, losses, rtol=0.03)
