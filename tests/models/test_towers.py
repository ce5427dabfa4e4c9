import flax.linen as nn
import jax
import numpy as np
import pytest

from mmjax.models import towers
from tests.tiny import quick_jit

TASKS = ("sentiment", "emotion", "sarcasm")
WIDTH = 16


def _init(module, x):
    return nn.meta.unbox(quick_jit(module.init)(jax.random.key(0), x))


@pytest.mark.parametrize("cross_stitch, tower_attention, coupled", [
    (False, False, False), (True, False, True), (False, True, True)])
def test_towers_exchange_information_only_through_sharing(cross_stitch, tower_attention, coupled):
    module = towers.SoftShared(TASKS, WIDTH, num_layers=2, cross_stitch=cross_stitch,
                               tower_attention=tower_attention, num_heads=2)
    x = np.random.default_rng(0).normal(size=(5, WIDTH)).astype(np.float32)
    params = _init(module, x)
    apply = quick_jit(module.apply)
    before = apply(params, x)
    # Utterances are independent rows: the first three alone give the same representations.
    np.testing.assert_allclose(apply(params, x[:3])["emotion"], before["emotion"][:3], rtol=1e-5, atol=1e-5)
    # Perturbing the sarcasm tower's first layer reaches the emotion tower only through sharing.
    kernel = params["params"]["tower_kernel_0"]
    params["params"]["tower_kernel_0"] = kernel.at[TASKS.index("sarcasm")].multiply(-1.0)
    after = apply(params, x)
    assert np.allclose(after["emotion"], before["emotion"], atol=1e-5) != coupled
    assert not np.allclose(after["sarcasm"], before["sarcasm"], atol=1e-5)


def test_cross_stitch_matrices_and_tie_penalty_read_the_params():
    x = np.ones((2, WIDTH), np.float32)
    params = _init(towers.SoftShared(TASKS, WIDTH, num_layers=2), x)["params"]
    matrices = towers.cross_stitch_matrices(params)
    assert list(matrices) == ["layer_0", "layer_1"]
    for matrix in matrices.values():  # near-identity initialisation, rows summing to 1
        assert matrix.shape == (3, 3)
        np.testing.assert_allclose(np.diag(matrix), 0.9, rtol=1e-6)
        np.testing.assert_allclose(matrix.sum(1), 1.0, rtol=1e-6)
    hard = _init(towers.HardShared(TASKS, WIDTH, num_layers=2), x)["params"]
    assert towers.cross_stitch_matrices(hard) == {}
    assert float(towers.tie_penalty(hard)) == 0.0
    assert float(towers.tie_penalty(params)) > 0.0
    tied = {k: (np.broadcast_to(v[:1], v.shape) if k.startswith(towers.TOWER_KERNEL) else v)
            for k, v in params.items()}
    assert float(towers.tie_penalty(tied)) < 1e-9
