"""Hard sharing: one shared trunk and a small head per task, text + audio + visual.

    python -m mmjax.train --config=configs/hard_share.py --workdir=runs/hard_share
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.sharing = "hard"
    config.model.tower_layers = 2
    return config
