"""Late-fusion baseline: soft sharing with the modalities' utterance vectors concatenated instead
of cross-modal attention.

    python -m mmjax.train --config=configs/late_fusion.py --workdir=runs/late_fusion
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.fusion = "concat"
    return config
