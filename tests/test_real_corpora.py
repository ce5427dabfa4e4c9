"""The real corpora of ../shared/data: prepared counts match their README, and each corpus config
trains on them (a few tiny steps)."""

import importlib

import jax
import numpy as np
import pytest

from mmjax import inputs, setup as setup_lib, sharding
from mmjax.data import records


def _counts(manifest, key):
    return tuple(manifest["splits"][s][key] for s in ("train", "validation", "test"))


def test_cmma_counts_match_the_readme(prepared_corpora):
    m = prepared_corpora["cmma"]
    assert _counts(m, "utterances") == (13788, 4046, 3961)
    # The README's 1,801 train conversations count the 1,912 blank rows' empty id as one.
    assert _counts(m, "dialogues") == (1800, 600, 600)
    train = m["splits"]["train"]["class_counts"]
    assert train["emotion"] == {"neutral": 7776, "joy": 1950, "surprise": 534, "anger": 1610, "sadness": 620,
                                "disgust": 821, "fear": 477}
    assert train["sentiment"] == {"negative": 2575, "neutral": 9324, "positive": 1889}
    assert train["sarcasm"] == {"none": 11616, "sarcastic": 2172}
    assert train["humor"] == {"none": 12420, "humor": 1368}
    assert sum(train["emotion_sentiment"].values()) == 13788
    assert sum(train["sarcasm_humor"].values()) == 13788 - 3  # the three ±0.5 rows are unlabelled
    assert m["splits"]["test"]["class_counts"]["emotion"]["disgust"] == 13 + 6  # 'digust' aliased
    rules = m["report"]["rules_applied"]
    assert rules["train.csv: completely blank rows dropped"] == 1912
    assert rules["Love 'emptylove' read as 'empty'"] == 11
    assert m["report"]["skipped"] == {}
    assert m["auxiliary_labels"]["love"]["class_counts"]["train"]["empty"] == 11
    assert m["text"]["kind"] == "vocabulary" and m["text"]["level"] == "char"
    assert m["features"] == {"audio_dim": 0, "visual_dim": 0}
    first = records.DialogueSource(m["dir"], "train", m)[0]
    assert first.dialogue_id == "C_1" and first.utterance_ids[:2] == ["C_1_U_1", "C_1_U_2"]
    assert first.info["topic"] == "秦羽墨和好友谈论新认识的男生" and first.audio == [None] * first.num_turns
    c60 = next(d for d in records.DialogueSource(m["dir"], "train", m) if d.dialogue_id == "C_60")
    assert c60.utterance_ids[2:5] == ["C_60_U_3", "C_60_U_", "C_60_U_4"]


def test_meld_counts_match_the_readme(prepared_corpora):
    m = prepared_corpora["meld"]
    assert _counts(m, "utterances") == (9989, 1109, 2610)
    assert _counts(m, "dialogues") == (1038, 114, 280)
    train = m["splits"]["train"]["class_counts"]
    assert train["emotion"] == {"neutral": 4710, "joy": 1743, "surprise": 1205, "anger": 1109, "sadness": 683,
                                "disgust": 271, "fear": 268}
    assert train["sentiment"] == {"negative": 2945, "neutral": 4710, "positive": 2334}
    assert list(m["tasks"]) == ["sentiment", "emotion"] and m["text"]["tokenizer"] == "all-MiniLM-L6-v2"
    first = records.DialogueSource(m["dir"], "validation", m)[0]
    assert first.dialogue_id == "dev/dia0" and first.utterance_ids[0] == "dev/dia0_utt0"


def test_mustard_counts_match_the_readme(prepared_corpora):
    m = prepared_corpora["mustard"]
    sarcasm = [m["splits"][s]["class_counts"]["sarcasm"] for s in ("train", "validation", "test")]
    assert sum(_counts(m, "dialogues")) == 690
    assert sum(c["sarcastic"] for c in sarcasm) == 345 and sum(c["none"] for c in sarcasm) == 345
    assert m["splits"]["test"]["dialogues"] == 356  # FRIENDS held out
    assert sarcasm[2] == {"none": 204, "sarcastic": 152}
    assert m["protocol"]["name"] == "speaker_independent" and len(m["protocol"]["validation_ids"]) == 33
    target = records.DialogueSource(m["dir"], "train", m)[0]
    assert (target.labels["sarcasm"][:-1] == -1).all() and target.labels["sarcasm"][-1] >= 0
    assert target.utterance_ids[-1] == target.dialogue_id


def _tiny(name: str, prepared) -> object:
    config = importlib.import_module(f"configs.{name}").get_config()
    config.data.dir = prepared[name]["dir"]
    config.batch_size = config.eval_batch_size = 8
    config.data.max_turns, config.data.max_tokens = 8, 12
    config.model.context_turns = min(config.model.context_turns, 7)
    config.model.width = config.model.mlp_dim = config.model.tower_hidden = 16
    config.model.dropout = 0.0  # dropout's random bits double the compile time on CPU
    config.warmup_steps = 0
    return config


@pytest.mark.parametrize("name", ["cmma", "meld", "mustard"])
def test_corpus_config_trains_on_the_real_corpus(name, prepared_corpora):
    config = _tiny(name, prepared_corpora)
    s = setup_lib.build(config)
    state = setup_lib.initial_state(s)  # with the moving average where the config keeps one
    step, _ = setup_lib.compile_train_step(s, config)
    data = iter(inputs.train_dataset(config, s.manifest, 0, 1))
    for _ in range(2):
        state, metrics = step(state, sharding.global_batch(next(data), s.mesh))
    metrics = jax.device_get(metrics)
    assert np.isfinite(metrics["loss"]) and metrics["loss"] > 0
    for task in config.tasks:
        assert metrics[f"{task}/count"] > 0, task  # every task of the corpus is labelled in a batch
