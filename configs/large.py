"""The ladder's top rung: a text encoder the size of BERT-base (12 pre-norm Transformer layers x
768, 12 heads, feed-forward 3,072) and the rest of the model at width 768, text + audio + visual,
soft sharing, on the synthetic corpus.

    python -m mmjax.benchmark --config=configs/large.py --config.model.dtype=bfloat16

The encoder is learnt from the corpus here (no BERT-base weights ship offline); fine-tuning a
BERT-base checkpoint costs the same FLOPs: ``--config.model.text_encoder=pretrained
--config.model.pretrained.path=DIR --config.data.tokenizer=DIR --config.data.dir=...``.
"""

from configs import soft_share


def get_config():
    config = soft_share.get_config()
    config.model.width = 768
    config.model.mlp_dim = 3072
    config.model.num_heads = 12
    config.model.text_layers = 12
    config.model.tower_hidden = 768
    config.data.max_tokens = 32
    config.learning_rate = 5e-4
    return config
