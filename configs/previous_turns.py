"""Dialogue context as a linear map of the previous turns (soft sharing): each utterance's vector
plus a learned map of each of its 3 previous turns' vectors, by distance and by same / other
speaker, instead of attention over them (mmjax.models.context.PreviousTurns).

    python -m mmjax.train --config=configs/previous_turns.py --workdir=runs/previous_turns
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.context_interaction = "previous_turns"
    return config
