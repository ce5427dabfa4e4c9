"""MELD with all-MiniLM-L6-v2 fine-tuned as the text encoder: configs/meld.py (the same records,
tokenised by MiniLM's WordPiece vocabulary) with the encoder trained at 0.025 x the learning rate
of the rest (5e-5), computing in bfloat16. Made for an accelerator: on one H200 a step takes
~0.1 s and a run of 600 steps 80 s; on a 2-core CPU a step takes seconds.

    python -m mmjax.prepare --corpus=meld --input=../shared/data/meld --output=data_cache/meld
    launch/seeds.sh configs/meld_finetune.py runs/meld/finetune "0 1 2"

Another BERT-family checkpoint: ``--config.model.pretrained.path=DIR`` (its tokenizer must be the
records': ``prepare --tokenizer=DIR``).
"""

from configs import common, meld


def get_config():
    return common.finetune_minilm(meld.get_config())
