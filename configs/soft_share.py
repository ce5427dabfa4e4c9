"""Soft sharing: one tower per task with cross-stitch mixing, text + audio + visual.

    python -m mmjax.train --config=configs/soft_share.py --workdir=runs/soft_share
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.sharing = "soft"
    return config
