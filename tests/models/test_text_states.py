"""Cached text states: the frozen encoder run once at prepare time gives the model the same input
as running it live (text_encoder="pretrained", mode="frozen"), and prediction computes them too."""

import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from mmjax import configuration, inputs, prediction, prepared_records
from mmjax.data import records
from mmjax.errors import ConfigError, RecordError
from mmjax.models import encoders, model as model_lib, pretrained, text_states
from tests.tiny import tiny_config


def _config(data_dir, checkpoint, text_encoder):
    config = tiny_config(data_dir)
    config.tasks = ("sentiment", "sarcasm")
    config.model.modalities = ("text",)
    config.model.text_encoder = text_encoder
    config.model.pretrained.path = checkpoint
    config.model.pretrained.mode = "frozen"
    config.data.tokenizer = checkpoint
    config.data.max_tokens = 64  # no utterance is cut: cached and live states then agree exactly
    return config


@pytest.fixture(scope="module")
def cached(tiny_checkpoint, tmp_path_factory):
    """(config, manifest) of synthetic records with the tiny checkpoint's cached states."""
    config = _config(str(tmp_path_factory.mktemp("cached") / "synthetic"), tiny_checkpoint, "cached")
    return config, prepared_records.load_or_prepare(config)


def test_records_cache_the_frozen_encoders_last_hidden_states(cached, tiny_checkpoint):
    config, manifest = cached
    assert manifest["text_states"] == {"checkpoint": os.path.abspath(tiny_checkpoint),
                                       "model": os.path.basename(tiny_checkpoint), "dim": 32, "dtype": "float16"}
    bert_config, params = pretrained.load(tiny_checkpoint)
    encoder = encoders.BertEncoder(bert_config)
    dialogue = records.DialogueSource(config.data.dir, "validation", manifest)[0]
    for tokens, states in list(zip(dialogue.tokens, dialogue.text_states))[:3]:  # eager BERT: 3 suffice
        # Alone and unpadded here; batched with longer utterances and padded when cached.
        want = encoder.apply({"params": params}, tokens[None], np.ones((1, len(tokens)), bool))[0]
        assert states.dtype == np.float16 and states.shape == want.shape
        np.testing.assert_allclose(states.astype(np.float32), want, rtol=2e-3, atol=2e-3)


def test_cached_model_computes_what_the_live_frozen_encoder_does(cached, tiny_checkpoint):
    config, manifest = cached
    live_config = _config(config.data.dir, tiny_checkpoint, "pretrained")
    live = model_lib.build_model(live_config, manifest)
    fast = model_lib.build_model(config, manifest)
    source = inputs.window_source(config, manifest, "validation")
    batch = source.batch(range(8))
    assert batch["text_states"].shape == (8, config.data.max_turns, 64, 32)

    params = nn.meta.unbox(live.init(jax.random.key(0), batch)["params"])
    params[model_lib.TEXT_ENCODER] = model_lib.pretrained_params(live_config)[model_lib.TEXT_ENCODER]
    fast_params = {k: v for k, v in params.items() if k != model_lib.TEXT_ENCODER}
    # Same parameters but the encoder's: a cached run's checkpoint is a frozen run's minus the encoder.
    assert jax.tree.structure(nn.meta.unbox(fast.init(jax.random.key(0), batch)["params"])) == \
        jax.tree.structure(fast_params)

    want = live.apply({"params": params}, batch)
    got = fast.apply({"params": fast_params}, batch)
    for task in config.tasks:
        np.testing.assert_allclose(got[task], want[task], rtol=1e-3, atol=1e-3)
    shifted = {**batch, "text_states": np.roll(batch["text_states"], 1, axis=1)}  # states of other turns
    assert np.abs(fast.apply({"params": fast_params}, shifted)["sentiment"] - want["sentiment"]).max() > 1e-2


def test_prediction_computes_the_states_of_new_dialogues(cached, tmp_path):
    config, manifest = cached
    dialogues = records.DialogueSource(config.data.dir, "validation", manifest)
    path = tmp_path / "input.jsonl"
    path.write_text("".join(
        json.dumps({"dialogue": f"d{i}", "turn": k, "speaker": s, "text": t}) + "\n"
        for i, d in enumerate(dialogues[j] for j in range(2)) for k, (s, t) in enumerate(zip(d.speakers, d.texts))))
    read = prediction.read_input(str(path), config, manifest)
    for new, old in zip(read, (dialogues[0], dialogues[1])):
        for x, y in zip(new.text_states, old.text_states):
            np.testing.assert_allclose(x.astype(np.float32), y.astype(np.float32), rtol=2e-3, atol=2e-3)


def test_missing_or_mismatched_states_are_clear_errors(cached, records_dir, tiny_checkpoint):
    config, manifest = cached
    plain = _config(records_dir, tiny_checkpoint, "cached")
    with pytest.raises(ConfigError, match="records in config.data.dir=.* have none: prepare them with .*--text_states"):
        inputs.shapes(plain, records.load_manifest(records_dir))
    other = _config(config.data.dir, "", "cached")  # all-MiniLM-L6-v2's, not the tiny checkpoint's
    with pytest.raises(ConfigError, match="cache the text states of"):
        inputs.shapes(other, manifest)
    long = records.DialogueSource(config.data.dir, "train", manifest)[0]
    long.tokens = [np.ones(65, np.int32)] + long.tokens[1:]  # the tiny checkpoint has 64 positions
    with pytest.raises(RecordError, match=f"dialogue {long.dialogue_id!r}, utterance .*: 65 tokens, more than "
                       "the checkpoint's max_position_embeddings=64"):
        text_states.embed({"train": [long]}, manifest["text"], tiny_checkpoint)
    vocabulary_records = [records.DialogueSource(records_dir, "train")[0]]
    with pytest.raises(ConfigError, match="tokenised by 'synthetic_vocabulary'.*--tokenizer"):
        text_states.embed({"train": vocabulary_records}, records.load_manifest(records_dir)["text"], tiny_checkpoint)


def test_cut_utterances_keep_one_state_per_kept_token(cached):
    config, manifest = cached
    config = config.copy_and_resolve_references()
    config.data.max_tokens = 6  # most synthetic utterances are longer
    batch = inputs.window_source(config, manifest, "validation").batch(range(4))
    assert batch["token_mask"].all(-1).any(), "some utterances are cut"
    np.testing.assert_array_equal(np.abs(batch["text_states"].astype(np.float32)).sum(-1) > 0, batch["token_mask"])


def test_cached_states_need_frozen_mode_text_and_the_checkpoints_tokenizer(cached, tiny_checkpoint, tmp_path):
    config, _ = cached
    finetune = config.copy_and_resolve_references()
    finetune.model.pretrained.mode = "finetune"
    with pytest.raises(ConfigError, match="config.model.pretrained.mode='finetune': set it to 'frozen'"):
        configuration.validate(finetune)
    no_text = config.copy_and_resolve_references()
    no_text.model.modalities = ("audio",)
    with pytest.raises(ConfigError, match="text_encoder='cached' but config.model.modalities=.* has no text"):
        model_lib.build_model(no_text, records.load_manifest(config.data.dir))
    own_vocabulary = _config(str(tmp_path / "records"), tiny_checkpoint, "cached")
    own_vocabulary.data.tokenizer = ""  # the synthetic corpus's own words, not the checkpoint's WordPiece
    with pytest.raises(ConfigError, match="tokenised by 'synthetic_vocabulary'.*set config.data.tokenizer"):
        prepared_records.load_or_prepare(own_vocabulary)
    assert not (tmp_path / "records").exists()  # refused before anything was written
