"""The ladder's middle rung: all-MiniLM-L6-v2 (6 layers x 384) fine-tuned as the text encoder and
the rest of the model at MiniLM's width (384, 6 heads of 64, feed-forward 1,536), text + audio +
visual, soft sharing, on the synthetic corpus tokenised by MiniLM's WordPiece vocabulary.

    python -m mmjax.benchmark --config=configs/base.py
    python -m mmjax.train --config=configs/base.py --workdir=runs/base

On an accelerator use ``--config.model.dtype=bfloat16`` and a larger ``--config.batch_size``
(BENCHMARKS.md). Another BERT-family checkpoint: ``--config.model.pretrained.path=DIR
--config.data.tokenizer=DIR --config.data.dir=...``.
"""

from configs import pretrained_text


def get_config():
    config = pretrained_text.get_config()
    config.model.pretrained.mode = "finetune"
    config.model.pretrained.learning_rate_scale = 0.05
    config.learning_rate = 1e-3
    config.model.width = 384
    config.model.mlp_dim = 1536
    config.model.num_heads = 6
    config.model.tower_hidden = 384
    config.data.max_turns = 12
    config.batch_size = 32
    return config
