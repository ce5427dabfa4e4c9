"""Soft sharing with the lighter audio / visual encoders: temporal convolution + bidirectional GRU.

    python -m mmjax.train --config=configs/conv_rnn.py --workdir=runs/conv_rnn
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.feature_encoder = "conv_rnn"
    return config
