"""optax optimizer and learning-rate schedule from the config."""

from __future__ import annotations

import jax
import optax

from mmjax.models.model import TEXT_ENCODER
from mmjax.models.towers import CROSS_STITCH

TRAINABLE, PRETRAINED = "trainable", "pretrained"


def learning_rate_schedule(config) -> optax.Schedule:
    """Linear warmup to ``learning_rate`` then cosine decay to 1% of it at ``num_train_steps``."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=config.learning_rate, warmup_steps=config.warmup_steps,
        decay_steps=max(config.num_train_steps, config.warmup_steps + 1),
        end_value=0.01 * config.learning_rate)


def param_labels(params) -> dict[str, str]:
    """Top-level params subtree -> optimizer group (a prefix tree of ``params``): the pretrained
    text encoder is ``PRETRAINED``, everything else ``TRAINABLE``."""
    return {name: PRETRAINED if name == TEXT_ENCODER else TRAINABLE for name in params}


def _decays(path, param) -> bool:
    return param.ndim >= 2 and not any(str(getattr(k, "key", "")).startswith(CROSS_STITCH) for k in path)


def make_optimizer(config) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW; no weight decay on biases, norm scales (ndim < 2) and
    soft sharing's cross-stitch matrices (decay would pull each task's self-weight towards 0).

    With a pretrained text encoder its subtree gets its own group: ``mode="frozen"`` sets its
    updates to zero (and keeps no Adam moments for it); ``"finetune"`` scales its AdamW updates
    (weight decay included) by ``learning_rate_scale``.
    """
    decay_mask = lambda params: jax.tree_util.tree_map_with_path(_decays, params)  # noqa: E731
    adamw = lambda: optax.adamw(learning_rate_schedule(config), b1=0.9, b2=0.999,  # noqa: E731
                                weight_decay=config.weight_decay, mask=decay_mask)
    clip = optax.clip_by_global_norm(config.grad_clip_norm)
    if config.model.text_encoder != "pretrained":
        return optax.chain(clip, adamw())
    settings = config.model.pretrained
    pretrained = (optax.set_to_zero() if settings.mode == "frozen"
                  else optax.chain(adamw(), optax.scale(settings.learning_rate_scale)))
    return optax.chain(clip, optax.partition({TRAINABLE: adamw(), PRETRAINED: pretrained}, param_labels))
