import jax
import numpy as np
import pytest

from mmjax import inputs, prepared_records, setup as setup_lib, sharding, state as state_lib
from mmjax.errors import ConfigError
from tests.tiny import tiny_config


def _trajectory(config, devices, batches):
    """Per-step losses of ``len(batches)`` compiled train steps on a mesh over ``devices``, the
    final state and the step's compile stats."""
    s = setup_lib.build(config, devices)
    state = state_lib.create_state(config.seed, s.model, s.tx, s.batch_shapes, s.mesh, s.rules)
    step, stats = setup_lib.compile_train_step(s, config)
    losses = []
    for batch in batches:
        state, metrics = step(state, sharding.global_batch(batch, s.mesh))
        losses.append(float(metrics["loss"]))
    return np.array(losses), state, stats


@pytest.fixture(scope="module")
def reference(records_dir):
    """12 steps on one device: the trajectory every mesh must reproduce."""
    config = tiny_config(records_dir)
    config.model.dropout = 0.1  # dropout masks must not depend on the sharding either
    config.num_train_steps = 12
    manifest = prepared_records.load_or_prepare(config)
    data = iter(inputs.train_dataset(config, manifest, 0, 1))
    batches = [next(data) for _ in range(12)]
    losses, _, stats = _trajectory(config, jax.devices()[:1], batches)
    return config, batches, losses, stats["flops"]


@pytest.mark.slow
@pytest.mark.parametrize("name,shape", [
    ("data parallel", {"data": 8, "fsdp": 1, "model": 1}),
    ("fsdp", {"data": 1, "fsdp": 8, "model": 1}),
    ("4x2: fsdp + tensor parallel", {"data": 1, "fsdp": 4, "model": 2}),
])
def test_mesh_trajectory_matches_single_device(reference, name, shape):
    config, batches, expected, flops = reference
    config = config.copy_and_resolve_references()
    config.mesh.shape = shape
    losses, state, stats = _trajectory(config, jax.devices(), batches)
    np.testing.assert_allclose(losses, expected, rtol=2e-5, err_msg=name)
    assert expected[-1] < expected[0]
    assert stats["flops"] == flops > 0  # the global program's matmul FLOPs, whatever the mesh
    # The parameters really are split as the rules say.
    kernel = state.params["sharing"]["tower_kernel_0"]  # logical ("tasks", "embed", "mlp")
    shard = kernel.addressable_shards[0].data.shape
    assert shard == (kernel.shape[0], kernel.shape[1] // shape["fsdp"], kernel.shape[2] // shape["model"])


def test_mesh_shape_errors_name_the_key():
    from configs import soft_share
    config = soft_share.get_config()
    config.mesh.shape = {"data": 3, "fsdp": -1, "model": 1}
    with pytest.raises(ConfigError, match=r"config.mesh.shape: 8 devices are not divisible by 3"):
        sharding.make_mesh(config)
    config.mesh.shape = {"data": -1, "fsdp": -1, "model": 1}
    with pytest.raises(ConfigError, match="at most one -1"):
        sharding.make_mesh(config)


def test_device_prefetch_fetches_ahead_and_checkpoints_the_next_batch_it_yields():
    import grain

    def batches():
        return iter(grain.MapDataset.range(100).shuffle(seed=0).batch(4).to_iter_dataset())

    mesh = jax.make_mesh((1, 1, 1), sharding.MESH_AXES, devices=jax.devices()[:1])
    plain, ahead = batches(), sharding.DevicePrefetch(batches(), mesh, ahead=2)
    for _ in range(3):
        np.testing.assert_array_equal(next(ahead), next(plain))  # the same batches, on the devices
    assert len(ahead._queue) == 2  # two fetched ahead
    state = ahead.get_state()
    expected = next(plain)
    resumed = sharding.DevicePrefetch(batches(), mesh, ahead=2)
    resumed.set_state(state)  # as a restored checkpoint does: it continues with the batch not yet yielded
    np.testing.assert_array_equal(next(resumed), expected)
    np.testing.assert_array_equal(next(ahead), expected)
