"""Baseline that sees text alone (soft sharing, same dialogue context).

    python -m mmjax.train --config=configs/text_only.py --workdir=runs/text_only
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.modalities = ("text",)
    return config
