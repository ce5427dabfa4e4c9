"""optax optimizer and learning-rate schedule from the config."""

from __future__ import annotations

import jax
import optax


def learning_rate_schedule(config) -> optax.Schedule:
    """Linear warmup to ``learning_rate`` then cosine decay to 1% of it at ``num_train_steps``."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=config.learning_rate, warmup_steps=config.warmup_steps,
        decay_steps=max(config.num_train_steps, config.warmup_steps + 1),
        end_value=0.01 * config.learning_rate)


def make_optimizer(config) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW; no weight decay on biases and norm scales (ndim < 2)."""
    decay_mask = lambda params: jax.tree.map(lambda p: p.ndim >= 2, params)  # noqa: E731
    return optax.chain(
        optax.clip_by_global_norm(config.grad_clip_norm),
        optax.adamw(learning_rate_schedule(config), b1=0.9, b2=0.999,
                    weight_decay=config.weight_decay, mask=decay_mask))
