"""Soft sharing whose towers also attend to the other tasks' towers at every layer, besides the
cross-stitch mixing.

    python -m mmjax.train --config=configs/tower_attention.py --workdir=runs/tower_attention
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.tower_attention = True
    return config
