"""Gated attention fusion baseline: attention-pooled modality summaries weighted by learned
gates (soft sharing).

    python -m mmjax.train --config=configs/gated_fusion.py --workdir=runs/gated_fusion
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.fusion = "gated"
    return config
