"""MUStARD with all-MiniLM-L6-v2 fine-tuned as the text encoder: configs/mustard.py (the same
records, already tokenised by MiniLM's WordPiece vocabulary) with the encoder trained at 0.025 x
the learning rate of the rest (5e-5) in bfloat16 — the settings of configs/meld_finetune.py,
taken over untuned. Made for an accelerator: on a 2-core CPU a step takes seconds.

    python -m mmjax.prepare --corpus=mustard --input=../shared/data/mustard --output=data_cache/mustard
    launch/seeds.sh configs/mustard_finetune.py runs/mustard/finetune_si "0 1 2"

For the speaker-dependent folds add ``--config.data.dir=data_cache/mustard_fold<k>`` (README).
"""

from configs import common, mustard


def get_config():
    return common.finetune_minilm(mustard.get_config())
