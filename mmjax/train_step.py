"""Pure train and eval steps: (state, batch) -> (state, metrics), jitted by the trainer.

Metrics are sums and counts over the global batch, so they are exact however it is sharded.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mmjax import ensemble, losses, metrics
from mmjax.state import TrainState
from mmjax.tasks import CLASSIFICATION, MULTILABEL


def _micro_batches(batch, num: int):
    """[B, ...] -> [num, B/num, ...]; micro-batch i takes rows i, i+num, ... so that every
    device's rows stay on that device (rows are sharded in contiguous blocks)."""
    def split(x):
        x = x.reshape((x.shape[0] // num, num) + x.shape[1:])
        return jnp.moveaxis(x, 1, 0)
    return jax.tree.map(split, batch)


def ema_decay(config) -> float:
    """``config.ema_decay`` (0: no moving average; runs saved before it existed have none)."""
    return config.get("ema_decay", 0.0)


def _ema_update(ema, params, step: jax.Array, decay: float):
    """ema + (1 - d) (params - ema) with d = min(decay, (1 + step) / (10 + step)): the warm-up
    of TensorFlow's ExponentialMovingAverage, so early averages forget the random init fast."""
    d = jnp.minimum(decay, (1.0 + step) / (10.0 + step)).astype(jnp.float32)
    return jax.tree.map(lambda e, p: e + ((1.0 - d) * (p - e)).astype(e.dtype), ema, params)


def make_train_step(model, tx: optax.GradientTransformation, config, class_weights=None):
    """train_step(state, batch) -> (state, metrics).

    With ``config.grad_accum_steps`` = k > 1 the batch is processed as k micro-batches whose
    gradients are summed (a lax.scan): same update, 1/k of the activation memory. Dropout keys
    derive from (seed, step, micro-batch), so a resumed run replays them exactly.
    class_weights: task -> float32 [classes] (``losses.class_weights``) scaling the training
    cross-entropy, or None; the per-task loss metrics are then the weighted ones; regression
    tasks use ``config.regression_loss`` ("l1" or "mse"). A state with
    ``ema_params`` also updates that moving average (decay ``config.ema_decay``).
    """
    accum = config.grad_accum_steps
    decay = ema_decay(config)
    tasks = {t.name: t for t in model.tasks}
    regression_loss = losses.regression_loss(config)

    def train_step(state: TrainState, batch):
        counts = losses.label_counts(tasks, batch["labels"])
        step_key = jax.random.fold_in(jax.random.key(config.seed), state.step)

        def micro_loss(params, micro, key):
            logits = model.apply({"params": params}, micro, train=True, rngs={"dropout": key})
            loss, per_task = losses.task_loss(tasks, logits, micro["labels"], counts,
                                              losses.task_weights(params, config), class_weights, regression_loss)
            correct = {t: jnp.trace(metrics.confusion_matrix(logits[t], micro["labels"][t])).astype(jnp.float32)
                       for t in logits if tasks[t].kind == CLASSIFICATION}  # for the training accuracy
            return loss, (per_task, correct)

        grad_fn = jax.value_and_grad(micro_loss, has_aux=True)
        if accum == 1:
            (loss, (per_task, correct)), grads = grad_fn(state.params, batch, step_key)
        else:
            def body(carry, xs):
                index, micro = xs
                out = grad_fn(state.params, micro, jax.random.fold_in(step_key, index))
                return jax.tree.map(jnp.add, carry, out), None

            zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(grad_fn, state.params, batch, step_key))
            ((loss, (per_task, correct)), grads), _ = jax.lax.scan(
                body, zeros, (jnp.arange(accum), _micro_batches(batch, accum)))

        (reg_value, reg_metrics), reg_grads = jax.value_and_grad(losses.regulariser, has_aux=True)(
            state.params, config)
        grads = jax.tree.map(jnp.add, grads, reg_grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = None if state.ema_params is None else _ema_update(state.ema_params, params, state.step, decay)
        step_metrics = {"loss": loss + reg_value, "grad_norm": optax.tree.norm(grads), **reg_metrics}
        for task, (loss_sum, count) in per_task.items():
            step_metrics[f"{task}/loss_sum"] = loss_sum
            step_metrics[f"{task}/count"] = count
            if task in correct:
                step_metrics[f"{task}/correct"] = correct[task]
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state, ema_params=ema), step_metrics

    return train_step


def _presence(batch) -> dict:
    """Which modalities each row has: {modality: bool [B, T]} (text: every real turn)."""
    present = {"text": batch["turn_mask"]}
    for key, value in batch.items():
        if key.endswith("_mask") and key not in ("token_mask", "turn_mask"):
            present[key.removesuffix("_mask")] = value.any(-1)
    return present


def make_eval_step(model, regression_loss: str = "l1", members: int = 0):
    """eval_step(params, batch) -> sums and per-row outputs of one global batch; with ``members``,
    of the ensemble of the ``ensemble.stack``ed params.

    Sums (exact however the batch is sharded): ``{task}/{name}`` for each of the task's
    ``metrics.statistics`` (classification: ``{task}/confusion`` int32 [C, C]),
    ``{task}/loss_sum``, ``{task}/count`` (regression: ``regression_loss``). Per row, for
    breakdowns on the host: ``rows`` = {``position`` int32 [B, T, 2] (the batch's, see
    pipeline), ``predicted/{task}`` (as from ``metrics.predict``) and ``label/{task}``
    [B, T, ...], ``present/{modality}`` bool [B, T]}.
    """
    tasks = {t.name: t for t in model.tasks}

    def eval_step(params, batch):
        batch = dict(batch)
        position = batch.pop("position")
        outputs = ensemble.apply(model, params, batch, members)
        out = {}
        rows = {"position": position, **{f"present/{m}": v for m, v in _presence(batch).items()}}
        for name, task_outputs in outputs.items():
            task, labels = tasks[name], batch["labels"][name]
            predicted = metrics.predict(task, task_outputs)
            out.update({f"{name}/{k}": v for k, v in metrics.statistics(task, predicted, labels).items()})
            out[f"{name}/loss_sum"], out[f"{name}/count"] = losses.masked_loss(task, task_outputs, labels,
                                                                                 regression_loss=regression_loss)
            rows[f"predicted/{name}"] = predicted
            rows[f"label/{name}"] = labels
        out["rows"] = rows
        return out

    return eval_step


def make_predict_step(model, members: int = 0):
    """predict_step(params, batch) -> {task: float32 [B, T, Task.outputs], "position": int32
    [B, T, 2]} (the batch's positions, passed through): class probabilities, each label's
    probability (multi-label), or the value (regression, clipped to the task's range); with
    ``members``, the ensemble's of the ``ensemble.stack``ed params."""
    tasks = {t.name: t for t in model.tasks}

    def readout(task, outputs):
        outputs = outputs.astype(jnp.float32)
        if task.kind == CLASSIFICATION:
            return jax.nn.softmax(outputs, -1)
        return jax.nn.sigmoid(outputs) if task.kind == MULTILABEL else task.from_unit(outputs)

    def predict_step(params, batch):
        batch = dict(batch)
        position = batch.pop("position")
        outputs = ensemble.apply(model, params, batch, members)
        return {"position": position, **{t: readout(tasks[t], v) for t, v in outputs.items()}}

    return predict_step
