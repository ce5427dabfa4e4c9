import json
import os

import jax
import pytest

from mmjax import checkpointing, restored_run, selection, setup as setup_lib, trainer
from mmjax.errors import ConfigError, TrainingDivergedError
from tests.tiny import tiny_config


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


@pytest.mark.slow
def test_early_stopping_counts_checkpoints_since_the_best_and_stays_stopped(records_dir, tmp_path, monkeypatch):
    config = tiny_config(records_dir)
    config.num_train_steps, config.early_stopping_patience = 12, 2
    config.log_every_steps = config.eval_every_steps = config.checkpoint_every_steps = 1
    config.max_checkpoints_to_keep = 1
    # Validation scores by step: better at step 2 (patience restarts), then two checkpoints without a gain.
    scores = iter([0.5, 0.6, 0.55, 0.5])
    monkeypatch.setattr(selection, "validation_score", lambda report, config: next(scores))
    workdir = str(tmp_path / "run")
    trainer.train_and_evaluate(config, workdir)
    mngr = checkpointing.manager(workdir, create=False)
    assert (mngr.latest_step(), checkpointing.best_step(mngr)) == (4, 2)
    mngr.close()
    trainer.train_and_evaluate(config, workdir)  # resumes stopped: no step, no validation (scores are used up)
    mngr = checkpointing.manager(workdir, create=False)
    assert mngr.latest_step() == 4


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
