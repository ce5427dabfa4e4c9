import jax
import numpy as np
import pytest

from mmjax import sharding, state as state_lib, train_step, trainer
from mmjax.data import pipeline
from tests.conftest import tiny_config


def _run(config, devices, batches):
    s = trainer.setup(config, devices)
    state = state_lib.create_state(config.seed, s.model, s.tx, s.batch_shapes, s.mesh, s.rules)
    initial = jax.device_get(state.params)
    step = jax.jit(train_step.make_train_step(s.model, s.tx, config),
                   in_shardings=(s.state_shardings, sharding.batch_sharding(s.mesh)),
                   out_shardings=(s.state_shardings, None))
    losses = []
    with sharding.activate(s.mesh, s.rules):
        for batch in batches:
            state, metrics = step(state, sharding.global_batch(batch, s.mesh))
            losses.append(float(metrics["loss"]))
    return initial, jax.device_get(state.params), losses, state


@pytest.mark.parametrize("shape", [{"data": 4, "fsdp": 1, "model": 2}, {"data": 2, "fsdp": 2, "model": 2}])
def test_sharded_step_matches_single_device(records_dir, shape):
    config = tiny_config(records_dir)
    config.model.dropout = 0.1  # dropout masks must not depend on the sharding either
    manifest = trainer.load_or_prepare_records(config)
    data = iter(pipeline.train_dataset(config, manifest, 0, 1))
    batches = [next(data) for _ in range(3)]

    init_one, params_one, losses_one, _ = _run(config, jax.devices()[:1], batches)
    config.mesh.shape = shape
    init_many, params_many, losses_many, state = _run(config, jax.devices(), batches)

    kernel = state.params["sharing"]["tower_kernel_0"]
    assert len(kernel.sharding.device_set) == 8
    if shape["model"] > 1:  # the mlp axis of the tower kernels is split over the model axis
        assert kernel.addressable_shards[0].data.shape[-1] == kernel.shape[-1] // shape["model"]
    jax.tree.map(np.testing.assert_array_equal, init_one, init_many)
    np.testing.assert_allclose(losses_many, losses_one, rtol=1e-5)
    assert losses_one[-1] < losses_one[0]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), params_many, params_one)
