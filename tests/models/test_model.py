import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import hard_share, soft_share, text_only
from mmjax import inputs
from mmjax.data import packing, records
from mmjax.models import model as model_lib
from mmjax.tasks import TASKS
from tests.tiny import tiny_config


def _setup(records_dir, base=soft_share):
    config = tiny_config(records_dir, base)
    manifest = records.load_manifest(records_dir)
    model = model_lib.build_model(config, manifest)
    batch = next(inputs.eval_batches(config, manifest, "validation", 0, 1))
    params = model.init(jax.random.key(0), batch)["params"]
    return config, model, nn.meta.unbox(params), batch


def _pad(batch, turns=3, tokens=4, audio_frames=5, visual_frames=3, seed=0):
    """Adds padding positions along every padded axis, filled with random junk under False masks."""
    rng = np.random.default_rng(seed)
    extra = {"tokens": (turns, tokens), "token_mask": (turns, tokens),
             "audio": (turns, audio_frames, 0), "audio_mask": (turns, audio_frames),
             "visual": (turns, visual_frames, 0), "visual_mask": (turns, visual_frames),
             "speakers": (turns,), "turn_mask": (turns,)}
    out = {"labels": {t: np.pad(v, [(0, 0), (0, turns)], constant_values=-1) for t, v in batch["labels"].items()}}
    for key, sizes in extra.items():
        if key not in batch:
            continue
        value = batch[key]
        padded = np.pad(value, [(0, 0)] + [(0, n) for n in sizes])
        if value.dtype == np.float32:
            junk = rng.normal(size=padded.shape).astype(np.float32)
        elif key in ("tokens", "speakers"):
            junk = rng.integers(0, 100, size=padded.shape).astype(np.int32)
        else:
            junk = padded  # masks stay False on the padding
        inside = np.zeros(padded.shape, bool)
        inside[tuple(slice(0, n) for n in value.shape)] = True
        out[key] = np.where(inside, padded, junk)
    return out


@pytest.mark.parametrize("base", [soft_share, hard_share, text_only])
def test_logits_have_one_row_per_turn_and_class(records_dir, base):
    config, model, params, batch = _setup(records_dir, base)
    logits = model.apply({"params": params}, batch)
    B, T = batch["turn_mask"].shape
    assert set(logits) == set(config.tasks)
    for task, value in logits.items():
        assert value.shape == (B, T, TASKS[task].num_classes) and value.dtype == jnp.float32
        assert np.isfinite(np.asarray(value)).all()


@pytest.mark.parametrize("base", [soft_share, hard_share])
def test_padding_does_not_change_unmasked_outputs(records_dir, base):
    config, model, params, batch = _setup(records_dir, base)
    before = model.apply({"params": params}, batch)
    after = model.apply({"params": params}, _pad(batch))
    T = batch["turn_mask"].shape[1]
    mask = batch["turn_mask"]
    assert mask.sum() > 10
    for task in before:
        np.testing.assert_allclose(np.asarray(after[task])[:, :T][mask], np.asarray(before[task])[mask],
                                   rtol=1e-5, atol=1e-5)


def test_absent_modality_contributes_nothing(records_dir):
    config, model, params, batch = _setup(records_dir)
    batch = jax.tree.map(np.copy, batch)
    batch["audio_mask"][:, 1] = False  # turn 1 has no audio in every example
    before = model.apply({"params": params}, batch)
    changed = jax.tree.map(np.copy, batch)
    changed["audio"][:, 1] = np.random.default_rng(0).normal(size=changed["audio"][:, 1].shape) * 10
    after = model.apply({"params": params}, changed)
    for task in before:
        np.testing.assert_allclose(np.asarray(after[task]), np.asarray(before[task]), rtol=1e-6, atol=1e-6)
    # ...while present audio does matter.
    changed["audio"][:, 2] = np.random.default_rng(1).normal(size=changed["audio"][:, 2].shape)
    moved = model.apply({"params": params}, changed)
    assert not np.allclose(np.asarray(moved["sarcasm"])[:, 2], np.asarray(before["sarcasm"])[:, 2])


@pytest.mark.parametrize("base", [soft_share, hard_share, text_only])
def test_every_parameter_has_logical_axis_names(records_dir, base):
    config = tiny_config(records_dir, base)
    manifest = records.load_manifest(records_dir)
    model = model_lib.build_model(config, manifest)
    batch = next(inputs.eval_batches(config, manifest, "validation", 0, 1))
    boxed = jax.eval_shape(lambda: model.init(jax.random.key(0), batch))["params"]
    leaves = jax.tree_util.tree_leaves_with_path(boxed, is_leaf=lambda x: isinstance(x, nn.Partitioned))
    assert len(leaves) > 20
    for path, leaf in leaves:
        assert isinstance(leaf, nn.Partitioned), f"{jax.tree_util.keystr(path)} has no logical axis names"
        assert len(leaf.names) == len(leaf.value.shape), jax.tree_util.keystr(path)


@pytest.mark.parametrize("text_encoder, devices", [("scratch", 1), ("ngram", 1), ("scratch", 4)])
def test_packed_text_gives_the_outputs_of_unpacked_text(records_dir, text_encoder, devices):
    # Every utterance's states come out the same whether it has a row to itself or shares one
    # (mmjax.data.packing), cross-modal attention over its tokens included (soft_share: all three).
    config = tiny_config(records_dir, soft_share)
    config.model.text_encoder = text_encoder
    manifest = records.load_manifest(records_dir)
    model = model_lib.build_model(config, manifest)
    batch = next(inputs.eval_batches(config, manifest, "validation", 0, 1))
    packed = packing.pack(batch, packing.Packing(devices))  # the whole batch, or per block of 2 windows
    assert packing.num_rows(packed) * devices < batch["turn_mask"].size  # it does pack
    params = model.init(jax.random.key(0), batch)["params"]
    before, after = model.apply({"params": params}, batch), model.apply({"params": params}, packed)
    mask = batch["turn_mask"]
    for task in before:
        np.testing.assert_allclose(np.asarray(after[task])[mask], np.asarray(before[task])[mask], rtol=1e-5, atol=1e-5)


def test_dot_product_attention_gives_the_einsum_kernels_outputs(records_dir):
    config, model, params, batch = _setup(records_dir)
    config.model.attention = "dot_product"
    fused = model_lib.build_model(config, records.load_manifest(records_dir))
    assert fused.attention == "dot_product" and model.attention == "einsum"
    for task, value in fused.apply({"params": params}, batch).items():
        np.testing.assert_allclose(value, model.apply({"params": params}, batch)[task], rtol=1e-4, atol=1e-5)
