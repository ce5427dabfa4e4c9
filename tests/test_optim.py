import jax.numpy as jnp
import numpy as np

from configs import soft_share
from mmjax import optim


def test_weight_decay_spares_biases_norms_and_cross_stitch_mixing():
    """With zero gradients only weight decay moves a parameter: kernels shrink, the rest stay."""
    config = soft_share.get_config()
    config.weight_decay, config.warmup_steps = 0.5, 0
    params = {"sharing": {"cross_stitch_0": jnp.eye(3), "layer_0": {"kernel": jnp.ones((3, 3)),
                                                                   "bias": jnp.ones(3)}},
              "norm": {"scale": jnp.ones(3)}}
    tx = optim.make_optimizer(config)
    zeros = {"sharing": {"cross_stitch_0": jnp.zeros((3, 3)), "layer_0": {"kernel": jnp.zeros((3, 3)),
                                                                        "bias": jnp.zeros(3)}},
             "norm": {"scale": jnp.zeros(3)}}
    updates, _ = tx.update(zeros, tx.init(params), params)
    assert np.all(np.asarray(updates["sharing"]["layer_0"]["kernel"]) < 0)
    for leaf in (updates["sharing"]["cross_stitch_0"], updates["sharing"]["layer_0"]["bias"],
                 updates["norm"]["scale"]):
        assert np.all(np.asarray(leaf) == 0)
