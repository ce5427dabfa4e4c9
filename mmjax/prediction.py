"""A restored run over new dialogues: JSONL in (see data.dialogue_jsonl), JSONL out.

Utterances are cut into the same context windows as in training and evaluation
(``pipeline.WindowSource``), so each is predicted once, with its preceding turns as context.
One output line per utterance, dialogue by dialogue (in the order of their first input line),
each dialogue's utterances in turn order (``utterance_index``: the position in that order)::

    {"dialogue_id": "d1", "utterance_id": "d1_0", "utterance_index": 0,
     "sentiment": {"label": "positive", "probabilities": {"negative": 0.01, "neutral": 0.04, "positive": 0.95}},
     "topics": {"labels": ["work"], "probabilities": {"family": 0.12, "work": 0.91}},
     "intensity": {"value": 1.734},
     ...every task of the run...}

By kind (``mmjax.tasks``): a classification task gives its most probable label and every
label's softmax probability; a multi-label task the labels whose probability is > 0.5 and
every label's (sigmoid) probability; a regression task its value, clipped to the task's range.
Numbers are float32, rounded to 6 decimals. The whole input is read
and checked before the model is restored, and the output is written to a temporary file renamed
at the end: a bad line or an interruption never leaves a partial output.
"""

from __future__ import annotations

import json

import jax
import numpy as np

from mmjax import atomic, inputs, report, restored_run, setup as setup_lib, sharding
from mmjax import progress as progress_lib
from mmjax.data import dialogue_jsonl, pipeline, text
from mmjax.models import text_states
from mmjax.tasks import MULTILABEL, REGRESSION, Task, corpus_tasks

DECIMALS = 6


def read_input(path: str, config, manifest, allow_outside: bool = False) -> dialogue_jsonl.Dialogues:
    """The input's dialogues, tokenized with the training tokenizer; features checked against the
    training records' dimensions for the modalities the model reads; for a model that reads
    cached text states, those of the training records' checkpoint."""
    features = {m: dialogue_jsonl.FeatureSpec(manifest["features"][f"{m}_dim"], config.data[f"max_{m}_frames"])
                for m in config.model.modalities if m != "text"}
    dialogues = dialogue_jsonl.read(path, text.from_manifest(manifest["text"]), features, allow_outside)
    if inputs.text_states_dim(config, manifest):
        text_states.embed({"input": dialogues}, manifest["text"], manifest["text_states"]["checkpoint"],
                          progress=jax.process_index() == 0)
    return dialogues


def probabilities(run: restored_run.RestoredRun, dialogues, progress: bool = True) -> list[dict[str, np.ndarray]]:
    """Per dialogue: {task: float32 [turns, Task.outputs]} class or label probabilities, or values."""
    s, config = run.setup, run.config
    source = pipeline.WindowSource(dialogues, inputs.shapes(config, s.manifest), config.model.context_turns,
                                   positions=True, groups=inputs.text_packing(config, mesh=s.mesh))
    step = setup_lib.jit_predict_step(s, run.members)
    tasks = corpus_tasks(s.manifest)
    out = [{t: np.zeros((d.num_turns, tasks[t].outputs), np.float32) for t in config.tasks} for d in dialogues]
    total = pipeline.num_ordered_batches(len(source), config.eval_batch_size, jax.process_count())
    with sharding.activate(s.mesh, s.rules):
        for at, params, read in run.by_step():  # one pass per checkpoint (per-task selection: several)
            batches = pipeline.ordered_batches(source, config.eval_batch_size, jax.process_index(),
                                               jax.process_count(), config.data.read_threads)
            bar = progress_lib.bar(batches, total=total, desc=f"predict ({report.step_label(at)})", unit="batch",
                                   enabled=progress)
            for local_batch in bar:
                result = jax.device_get(step(params, sharding.global_batch(local_batch, s.mesh)))
                position = result.pop("position")  # [B, T, 2]
                rows = position[..., 0] >= 0
                for task in read:
                    for (d, t), p in zip(position[rows].tolist(), result[task][rows]):
                        out[d][task][t] = p
    return out


def output_lines(dialogues, probs: list[dict[str, np.ndarray]], manifest):
    """One JSON line per utterance (see the module docstring); label names from ``manifest``."""
    tasks = corpus_tasks(manifest)  # read once: it is checked on every read
    for dialogue, per_task in zip(dialogues, probs):
        for i in range(dialogue.num_turns):
            line = {"dialogue_id": dialogue.dialogue_id, "utterance_id": dialogue.utterance_ids[i],
                    "utterance_index": i}
            line.update({task: _answer(tasks[task], values[i]) for task, values in per_task.items()})
            yield json.dumps(line, ensure_ascii=False) + "\n"


def _answer(task: Task, values: np.ndarray) -> dict:
    """One utterance's prediction for ``task`` from its [Task.outputs] probabilities or value."""
    if task.kind == REGRESSION:
        return {"value": round(float(values[0]), DECIMALS)}
    probabilities = {label: round(float(p), DECIMALS) for label, p in zip(task.labels, values)}
    if task.kind == MULTILABEL:
        return {"labels": [label for label, p in zip(task.labels, values) if p > 0.5], "probabilities": probabilities}
    return {"label": task.labels[int(np.argmax(values))], "probabilities": probabilities}


def write_lines(path: str, lines) -> None:
    """Writes ``lines`` to ``path`` atomically (temporary file, then rename)."""
    atomic.write_atomically(path, lambda f: f.writelines(lines))


def predict(workdir: str | list[str], input_path: str, output_path: str, step: int | str = "latest", config=None,
            progress: bool = True, allow_outside_paths: bool = False) -> int:
    """Predicts every utterance of ``input_path`` with ``step`` of ``workdir``, or of the ensemble
    of the runs in a list of workdirs (``mmjax.ensemble``); writes ``output_path`` (process 0)
    and returns the number of utterances. ``allow_outside_paths``: feature paths may leave the
    input's directory."""
    workdirs = [workdir] if isinstance(workdir, str) else list(workdir)
    config = restored_run.run_config(workdirs[0], config)
    manifest = restored_run.training_manifest(workdirs[0], config)
    dialogues = read_input(input_path, config, manifest, allow_outside_paths)  # every line checked first
    if len(workdirs) == 1:
        run = restored_run.restore(workdirs[0], step, config, manifest=manifest)
    else:
        run = restored_run.restore_ensemble(workdirs, step, config, manifest=manifest)
    probs = probabilities(run, dialogues, progress)
    if jax.process_index() == 0:
        write_lines(output_path, output_lines(dialogues, probs, manifest))
    return int(dialogues.turns.sum())
