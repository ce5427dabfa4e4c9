"""Every model variant of configs/ trains a few steps on the synthetic corpus without NaN."""

import importlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmjax import inputs, losses, train_step
from mmjax.data import records
from mmjax.models import model as model_lib
from mmjax.state import TrainState
from tests.tiny import quick_jit, tiny_config

# soft_share, the default, trains in test_train_step and test_learning.
VARIANTS = ("hard_share", "text_only", "late_fusion", "no_context", "previous_turns", "gated_fusion", "conv_rnn", "uncertainty",
            "tower_attention")


def _tiny(records_dir, name):
    """The variant, small: compiling dominates, so fewer modalities and tasks, same code paths."""
    config = tiny_config(records_dir, importlib.import_module(f"configs.{name}"))
    config.tasks = ("sentiment", "sarcasm", "humor", "sarcasm_humor")
    config.model.update(dict(width=16, mlp_dim=16, tower_hidden=16, num_heads=2,
                             modalities=tuple(m for m in config.model.modalities if m != "visual")))
    config.data.update(dict(max_turns=6, max_tokens=8, max_audio_frames=6, max_visual_frames=4))
    config.batch_size = 4
    return config


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_variant_trains_without_nan(records_dir, name):
    config = _tiny(records_dir, name)
    manifest = records.load_manifest(records_dir)
    # Plain SGD: the optimizer does not vary between variants (test_train_step runs AdamW) and
    # SGD's update compiles in a fraction of the time.
    model, tx = model_lib.build_model(config, manifest), optax.sgd(config.learning_rate)
    step = train_step.make_train_step(model, tx, config, losses.class_weights(config, manifest))
    data = iter(inputs.train_dataset(config, manifest, 0, 1))
    batches = jax.tree.map(lambda *xs: np.stack(xs), next(data), next(data))  # [steps, batch, ...]

    def train(batches):  # init and both steps in one program: one compilation
        params = nn.meta.unbox(model.init(jax.random.key(0), jax.tree.map(lambda x: x[0], batches))["params"])
        state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
        final, metrics = jax.lax.scan(step, state, batches)
        return params, final.params, metrics

    initial, final, metrics = jax.device_get(quick_jit(train)(batches))
    assert np.isfinite(metrics["loss"]).all() and np.isfinite(metrics["grad_norm"]).all(), metrics
    assert all(np.isfinite(p).all() for p in jax.tree.leaves(final))
    assert (metrics["grad_norm"] > 0).all()
    moved = jax.tree.map(lambda a, b: not np.array_equal(a, b), initial, final)
    assert all(jax.tree.leaves(moved["heads"])), "every head parameter is trained"
    if config.loss_balancing == "uncertainty":
        assert not np.array_equal(final[losses.TASK_LOG_VARIANCE], initial[losses.TASK_LOG_VARIANCE])
        assert np.isfinite(metrics[f"log_variance/{config.tasks[0]}"]).all()
