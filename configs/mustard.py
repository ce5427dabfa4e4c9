"""MUStARD (English, sarcasm of a target utterance given its context): soft sharing on text.

A record is a target utterance after its context turns (up to 11); only the target is
labelled, so each window is the whole record and the target attends to every context turn
(context_turns 11). Tokens: 15 / 27 / 47 at the 50th / 90th / 99th percentile, max_tokens 48.
Prepared with the speaker-independent protocol (FRIENDS is the test set); for the
speaker-dependent 5-fold protocol prepare each fold into its own directory and train each
(``--config.data.dir=data_cache/mustard_fold0`` ...).

    python -m mmjax.prepare --corpus=mustard --input=../shared/data/mustard --output=data_cache/mustard
    python -m mmjax.train --config=configs/mustard.py --workdir=runs/mustard
    python -m mmjax.evaluate --config=configs/mustard.py --workdir=runs/mustard --split=test

    python -m mmjax.prepare --corpus=mustard --input=../shared/data/mustard --protocol=speaker_dependent \\
        --fold=0 --seed=0 --output=data_cache/mustard_fold0
"""

from configs import soft_share


def get_config():
    config = soft_share.get_config()
    config.data.corpus = "mustard"
    config.data.dir = "data_cache/mustard"
    config.tasks = ("sarcasm",)
    config.model.modalities = ("text",)
    config.data.max_tokens = 48
    config.data.max_turns = 12
    config.model.context_turns = 11
    # About 300 training targets: 10 batches per epoch; a small model and few steps overfit less.
    config.batch_size = 16
    config.num_train_steps = 300
    config.warmup_steps = 30
    config.log_every_steps = 10
    config.eval_every_steps = 50
    config.checkpoint_every_steps = 50
    return config
