"""CMMA (Chinese, all six tasks): soft sharing on text, dialogue context over 3 previous turns.

The published corpus has text, speakers and labels but no audio/visual features, so the model
sees text alone; add features with ``prepare --audio/--visual`` and
``--config.model.modalities='("text","audio","visual")'``. Text is a character vocabulary of
the training split (2,681 characters; see ``mmjax.data.text``). Utterances are short: 9 / 14 / 18
tokens (CLS + characters) at the 50th / 90th / 99th percentile, 28 at most, hence max_tokens 24.

    python -m mmjax.prepare --corpus=cmma --input=../shared/data/cmma --output=data_cache/cmma
    python -m mmjax.train --config=configs/cmma.py --workdir=runs/cmma
    python -m mmjax.evaluate --config=configs/cmma.py --workdir=runs/cmma --split=test
"""

from configs import soft_share


def get_config():
    config = soft_share.get_config()
    config.data.corpus = "cmma"
    config.data.dir = "data_cache/cmma"
    config.model.modalities = ("text",)
    config.data.max_tokens = 24
    config.data.max_turns = 12  # 90% of conversations have <= 10 turns; longer ones become windows
    # 1,800 training conversations: about 56 steps per epoch at 32 windows; ~11 epochs, the best
    # checkpoint by validation score is the one evaluated.
    config.num_train_steps = 600
    config.eval_every_steps = 150
    config.checkpoint_every_steps = 150
    return config
