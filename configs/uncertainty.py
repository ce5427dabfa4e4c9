"""Soft sharing with learned uncertainty task weighting and square-root inverse-frequency class
weights for the imbalanced labels (sarcasm, humor, the correlations).

    python -m mmjax.train --config=configs/uncertainty.py --workdir=runs/uncertainty
"""

from configs import common


def get_config():
    config = common.get_config()
    config.loss_balancing = "uncertainty"
    config.class_weights = "sqrt_inverse"
    return config
