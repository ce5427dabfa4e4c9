import copy
import json
import os

import jax
import numpy as np
import pytest

from mmjax import checkpointing, prepared_records, restored_run, setup as setup_lib, trainer
from mmjax.errors import ConfigError, TrainingDivergedError
from tests.tiny import scored_checkpoints, tiny_config


@pytest.mark.slow
def test_divergence_stops_with_step_and_task_and_keeps_good_checkpoints(records_dir, tmp_path):
    config = tiny_config(records_dir)
    # Warmup starts at 0, so step 1 changes nothing; step 2 moves every weight by ~1e30 (Adam
    # normalises the gradient) and step 3's forward pass overflows.
    config.learning_rate, config.warmup_steps = 1e30, 1
    config.num_train_steps, config.log_every_steps, config.checkpoint_every_steps = 6, 1, 1
    workdir = str(tmp_path / "run")
    with pytest.raises(TrainingDivergedError, match=r"non-finite loss or gradient at step 3 in sentiment, emotion"):
        trainer.train_and_evaluate(config, workdir)
    mngr = checkpointing.manager(workdir, create=False)
    mngr.wait_until_finished()
    assert max(mngr.all_steps()) == 2


def test_batch_must_split_over_devices_and_micro_batches(records_dir):
    config = tiny_config(records_dir)
    config.grad_accum_steps = 3
    with pytest.raises(ConfigError, match=r"config.batch_size=8 is not divisible by the 8 data-parallel devices"):
        setup_lib.build(config)
    # Evaluation and prediction never run the train step: 3 devices restore a batch-8 run.
    config = restored_run.fit_to_devices(tiny_config(records_dir), 3)
    with pytest.raises(ConfigError, match=r"config.batch_size=8 is not divisible by the 3 data-parallel devices"):
        setup_lib.build(config, jax.devices()[:3])
    assert setup_lib.build(config, jax.devices()[:3], training=False).mesh.size == 3


def test_training_needs_a_validation_split_labelling_every_task(records_dir):
    config = tiny_config(records_dir)
    manifest = prepared_records.load_or_prepare(config)
    trainer.check_validation_split(config, manifest)
    no_humor = copy.deepcopy(manifest)
    no_humor["splits"]["validation"]["class_counts"]["humor"] = {"none": 0, "humor": 0}
    no_humor["splits"]["validation"]["labelled"]["humor"] = 0
    with pytest.raises(ConfigError, match=r"validation split of .* labels no utterance for \['humor'\]"):
        trainer.check_validation_split(config, no_humor)
    del no_humor["splits"]["validation"]
    with pytest.raises(ConfigError, match=r"have no validation split"):
        trainer.check_validation_split(config, no_humor)


@pytest.mark.slow
def test_early_stopping_counts_checkpoints_since_the_best_and_stays_stopped(records_dir, tmp_path, monkeypatch):
    config = tiny_config(records_dir)
    config.num_train_steps, config.early_stopping_patience = 12, 2
    config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 1
    config.max_checkpoints_to_keep = 1
    # Validation scores by step: better at step 2 (patience restarts), then two checkpoints without a gain.
    scores = iter([0.5, 0.6, 0.55, 0.5])
    monkeypatch.setattr(trainer, "validation_score", lambda report, config: next(scores))
    workdir = str(tmp_path / "run")
    trainer.train_and_evaluate(config, workdir)
    mngr = checkpointing.manager(workdir, create=False)
    assert (mngr.latest_step(), checkpointing.best_step(mngr)) == (4, 2)
    mngr.close()
    trainer.train_and_evaluate(config, workdir)  # resumes stopped: no step, no validation (scores are used up)
    mngr = checkpointing.manager(workdir, create=False)
    assert mngr.latest_step() == 4


def test_per_task_early_stopping_waits_until_no_task_has_improved(tmp_path):
    workdir = str(tmp_path / "run")
    # The joint score peaks at step 1; emotion alone improves until step 3.
    scored_checkpoints(workdir, {1: {"sentiment": 0.6, "emotion": 0.1}, 2: {"sentiment": 0.3, "emotion": 0.2},
                                 3: {"sentiment": 0.2, "emotion": 0.3}, 4: {"sentiment": 0.2, "emotion": 0.2}})
    config = tiny_config(str(tmp_path))
    config.tasks, config.checkpoint_every_steps, config.early_stopping_patience = ("sentiment", "emotion"), 1, 2
    mngr = checkpointing.manager(workdir, create=False)
    assert trainer.stopped_early(config, mngr, 2) is None and trainer.stopped_early(config, mngr, 3) == 1
    config.checkpoint_selection = "per_task"
    assert trainer.stopped_early(config, mngr, 4) is None  # emotion's best, step 3, is one checkpoint old
    assert trainer.stopped_early(config, mngr, 5) == 3
    config.tasks = ("sentiment", "humor")  # a task no checkpoint scored (a run begun before): not yet stalled
    assert trainer.stopped_early(config, mngr, 5) is None
    mngr.close()


def test_a_flat_task_keeps_its_first_best_step_and_lets_early_stopping_fire(tmp_path):
    """Only a strict improvement moves a best step: the manager keeps, and selection reads, the
    earliest of equal scores, so a task that stays flat after its peak does not hold training up."""
    workdir = str(tmp_path / "run")
    # Sentiment peaks at step 1, emotion at step 2 and stays there; the joint score is flat throughout.
    flat = {step: {"sentiment": 0.5 if step == 1 else 0.25, "emotion": 0.125 if step == 1 else 0.375}
            for step in range(1, 6)}  # exact in binary: the joint means tie exactly
    scored_checkpoints(workdir, flat, keep_latest=1)
    mngr = checkpointing.manager(workdir, create=False)
    assert mngr.all_steps() == [1, 2, 5]
    assert checkpointing.best_task_steps(mngr, ["sentiment", "emotion"]) == {"sentiment": 1, "emotion": 2}
    assert checkpointing.best_step(mngr) == 1
    config = tiny_config(str(tmp_path))
    config.tasks, config.checkpoint_every_steps, config.early_stopping_patience = ("sentiment", "emotion"), 1, 3
    assert trainer.stopped_early(config, mngr, 4) == 1
    config.checkpoint_selection = "per_task"
    assert trainer.stopped_early(config, mngr, 4) is None and trainer.stopped_early(config, mngr, 5) == 2
    # The step just saved counts from its in-memory scores (its save may be in flight): a gain at step 6.
    assert trainer.stopped_early(config, mngr, 6, {"sentiment": 0.25, "emotion": 0.5}) is None
    assert trainer.stopped_early(config, mngr, 6, {"sentiment": 0.25, "emotion": 0.375}) == 2
    mngr.close()


@pytest.mark.slow
def test_per_task_training_saves_each_tasks_score_and_keeps_its_best_across_a_resume(records_dir, tmp_path):
    config = tiny_config(records_dir)
    config.tasks, config.checkpoint_selection = ("sentiment", "emotion", "sarcasm"), "per_task"
    config.eval_every_steps = config.checkpoint_every_steps = 1
    config.max_checkpoints_to_keep = 1
    workdir = str(tmp_path / "run")
    trainer.train_and_evaluate(config, workdir)
    config.num_train_steps = 6  # resumed from step 4
    trainer.train_and_evaluate(config, workdir)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        validated = {r["step"]: r for r in map(json.loads, f) if r["split"] == "validation"}
    assert sorted(validated) == list(range(1, 7))
    expected = {t: max(sorted(validated), key=lambda step: (validated[step][f"{t}/macro_f1"], -step))
                 for t in config.tasks}  # the earliest of equals
    joint = max(sorted(validated), key=lambda step: (validated[step]["score"], -step))
    mngr = checkpointing.manager(workdir, create=False)
    assert checkpointing.best_task_steps(mngr, config.tasks) == expected
    assert set(mngr.all_steps()) == {6, joint, *expected.values()}
    for step in mngr.all_steps():
        assert mngr.metrics(step) == checkpointing.step_metrics(step, validated[step]["score"], {
            t: validated[step][f"{t}/macro_f1"] for t in config.tasks})
    mngr.close()


def test_a_resumed_run_drops_the_log_lines_of_the_steps_it_logs_again(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": step, "split": split, "loss": 1.0}) + "\n"
                            for step in range(1, 6) for split in ("train", "validation")) + '{"step": 6, "spl\0\0')
    writer = trainer._Writer(str(tmp_path), enabled=True, start=3)  # resumed from step 3's checkpoint
    writer.write("train", 4, {"loss": 0.5})
    writer.close()
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["step"], r["split"]) for r in rows] == [(1, "train"), (1, "validation"), (2, "train"),
                                                       (2, "validation"), (3, "train"), (3, "validation"),
                                                       (4, "train")]
    assert rows[-1]["loss"] == 0.5


@pytest.mark.slow
def _own_corpus(directory, emotions, scale: float = 1.0) -> None:
    """A JSONL corpus with its own label names and a task of each kind, all learnable from the words."""
    import random

    rng = random.Random(0)
    directory.mkdir()
    for split, n in (("train", 60), ("validation", 12), ("test", 12)):
        with open(directory / f"{split}.jsonl", "w") as f:
            for d in range(n):
                for turn in range(3):
                    emotion = emotions[(d + turn) % 7] if split == "train" else rng.choice(emotions)
                    index = emotions.index(emotion)
                    labels = {"emotion": emotion, "act": ["statement", "question"][turn % 2],
                              "intensity": scale * (index - 3) / 1.5,  # regression over [-2, 2] (times scale)
                              "topics": [t for t, on in (("low", index < 3), ("high", index > 3)) if on]}
                    f.write(json.dumps({"dialogue": f"{split}{d}", "turn": turn, "speaker": "AB"[turn % 2],
                                        "text": f"{emotion.lower()}word{rng.randrange(3)} filler",
                                        "labels": labels}) + "\n")


@pytest.mark.slow
def test_a_corpus_with_its_own_tasks_trains_evaluates_and_predicts(tmp_path):
    """A JSONL corpus with label names and tasks mmjax never had, one of each kind, through every command."""
    from tests.tiny import run_module

    emotions = ["Joyful", "Mad", "Neutral", "Peaceful", "Powerful", "Sad", "Scared"]
    corpus = tmp_path / "corpus"
    _own_corpus(corpus, emotions)
    data, run = str(tmp_path / "records"), str(tmp_path / "run")
    code, out = run_module("mmjax.prepare", "--corpus=jsonl", f"--input={corpus}", f"--output={data}", "--tokenizer=word")
    assert code == 0 and "emotion / Powerful" in out and "topics / high" in out and "intensity mean" in out, out
    code, out = run_module("mmjax.train", "--config=tests/tiny.py", f"--config.data.dir={data}",
                           "--config.tasks=emotion,act,intensity,topics", "--config.model.modalities=text",
                           "--config.num_train_steps=40", "--config.eval_every_steps=40",
                           "--config.checkpoint_every_steps=40", "--config.learning_rate=0.01", f"--workdir={run}")
    assert code == 0, out[-3000:]
    code, out = run_module("mmjax.evaluate", f"--workdir={run}", "--split=test")
    assert code == 0 and "acc2_has0" in out and "exact_match" in out, out[-3000:]
    with open(os.path.join(run, "eval_test.json")) as f:
        report = json.load(f)["tasks"]
    assert report["emotion"]["labels"] == emotions and report["act"]["labels"] == ["question", "statement"]
    assert report["emotion"]["macro_f1"] > 0.5  # the emotion is in the words: it is learnt
    assert report["intensity"]["kind"] == "regression" and report["intensity"]["range"] == [-2.0, 2.0]
    assert report["intensity"]["corr"] > 0.5 and report["intensity"]["mse"] < report["intensity"]["mean_baseline"]["mse"]
    assert report["topics"]["labels"] == ["high", "low"] and report["topics"]["macro_f1"] > 0.5
    assert set(report["topics"]["per_label"]) == {"high", "low"}
    # predict reads the training format: the test split's file as it is (its labels are ignored)
    code, out = run_module("mmjax.predict", f"--workdir={run}", f"--input={corpus / 'test.jsonl'}",
                           f"--output={tmp_path / 'preds.jsonl'}")
    assert code == 0, out[-3000:]
    lines = [json.loads(x) for x in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert [x["utterance_id"] for x in lines] == [f"test{d}_{t}" for d in range(12) for t in range(3)]
    assert all(set(x["emotion"]["probabilities"]) == set(emotions) and x["act"]["label"] in ("question", "statement")
               for x in lines)
    assert all(-2 <= x["intensity"]["value"] <= 2 and set(x["topics"]["labels"]) <= {"high", "low"} for x in lines)
    # The checkpoint refuses records whose tasks differ (here the intensity's range): one clear error.
    other, other_data = tmp_path / "other", str(tmp_path / "other_records")
    _own_corpus(other, emotions, scale=1.5)
    assert run_module("mmjax.prepare", "--corpus=jsonl", f"--input={other}", f"--output={other_data}",
                      "--tokenizer=word")[0] == 0
    code, out = run_module("mmjax.evaluate", f"--workdir={run}", "--split=validation", "--config=tests/tiny.py",
                           f"--config.data.dir={other_data}", "--config.tasks=emotion,act,intensity,topics",
                           "--config.model.modalities=text")
    assert code != 0 and "Traceback" not in out and "differ from those the run was trained on in tasks" in out, out[-2000:]


def _tensorboard_tags(workdir: str) -> dict[str, list[int]]:
    """tag -> steps of every scalar and image in the workdir's TensorBoard event files."""
    import glob
    import struct

    from tensorboardX.proto import event_pb2

    tags = {}
    for path in glob.glob(os.path.join(workdir, "tensorboard", "events*")):
        with open(path, "rb") as f:
            data = f.read()
        i = 0
        while i < len(data):  # TFRecord: length, its CRC, the event, its CRC
            (n,) = struct.unpack("<Q", data[i:i + 8])
            event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 16 + n
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    return tags


@pytest.mark.slow
def test_tensorboard_gets_the_learning_rate_and_confusion_figures(records_dir, tmp_path):
    config = tiny_config(records_dir)
    config.num_train_steps, config.log_confusion_figures = 4, True
    trainer.train_and_evaluate(config, str(tmp_path))
    tags = _tensorboard_tags(str(tmp_path))
    assert tags["train/learning_rate"] == [2, 4] and tags["validation/confusion/emotion"] == [2, 4]  # validated at saves
    assert len([t for t in tags if t.startswith("validation/confusion/")]) == len(config.tasks)


def test_logged_steps_per_second_leave_validation_and_checkpoint_time_out():
    log = trainer._MetricLog(first_step=1)
    step = {"loss": np.float32(1.0), "grad_norm": np.float32(0.5), "tie_penalty": np.float32(0.0),
            "sarcasm/loss_sum": np.float32(2.0), "sarcasm/count": np.float32(4.0), "sarcasm/correct": np.float32(3.0)}
    for _ in range(4):
        log.add(step)
    log.started -= 10.0  # the interval began 10 s ago ...
    log.exclude_pause(8.0)  # ... of which 8 s went to validation and a checkpoint
    summary = log.summary(["sarcasm"])
    assert 1.9 < summary["steps_per_second"] <= 2.0  # 4 steps in the 2 s of training
    assert summary["sarcasm/loss"] == 0.5 and summary["sarcasm/accuracy"] == 0.75
