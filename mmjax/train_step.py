"""Pure train and eval steps: (state, batch) -> (state, metrics), jitted by the trainer.

Metrics are sums and counts over the global batch, so they are exact however it is sharded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mmjax import losses, metrics
from mmjax.state import TrainState


def make_train_step(model, tx: optax.GradientTransformation, config):
    """train_step(state, batch) -> (state, metrics); dropout keys derive from (seed, step)."""
    base_key = config.seed

    def train_step(state: TrainState, batch):
        dropout_key = jax.random.fold_in(jax.random.key(base_key), state.step)

        def loss_fn(params):
            logits = model.apply({"params": params}, batch, train=True, rngs={"dropout": dropout_key})
            loss, per_task, tie = losses.objective(logits, batch["labels"], params, config)
            correct = {t: jnp.sum(jnp.diag(metrics.confusion_matrix(logits[t], batch["labels"][t])))
                       for t in logits}
            return loss, (per_task, tie, correct)

        (loss, (per_task, tie, correct)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        step_metrics = {"loss": loss, "tie_penalty": tie, "grad_norm": optax.tree.norm(grads)}
        for task, (loss_sum, count) in per_task.items():
            step_metrics[f"{task}/loss_sum"] = loss_sum
            step_metrics[f"{task}/count"] = count
            step_metrics[f"{task}/correct"] = correct[task].astype(jnp.float32)
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), step_metrics

    return train_step


def make_eval_step(model, config):
    """eval_step(params, batch) -> {task: confusion [C, C], task/loss_sum, task/count}."""

    def eval_step(params, batch):
        logits = model.apply({"params": params}, batch, train=False)
        out = {}
        for task, task_logits in logits.items():
            labels = batch["labels"][task]
            out[task] = metrics.confusion_matrix(task_logits, labels)
            out[f"{task}/loss_sum"], out[f"{task}/count"] = losses.masked_cross_entropy(task_logits, labels)
        return out

    return eval_step
