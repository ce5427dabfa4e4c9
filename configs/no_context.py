"""Ablation without dialogue context: each utterance is seen on its own (soft sharing).

    python -m mmjax.train --config=configs/no_context.py --workdir=runs/no_context
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.context_turns = 0
    return config
