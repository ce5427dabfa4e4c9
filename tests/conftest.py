"""Test setup: 8 fake CPU devices (set before jax is imported) and a small synthetic corpus."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

from configs import soft_share  # noqa: E402
from mmjax.data.corpora import synthetic  # noqa: E402

SMALL_CORPUS = {"train": 48, "validation": 12, "test": 12}


def tiny_config(data_dir: str, base=soft_share):
    """A small, fast variant of ``base`` reading ``data_dir`` (the small synthetic corpus)."""
    config = base.get_config()
    config.data.dir = data_dir
    config.data.synthetic_dialogues = SMALL_CORPUS
    config.batch_size = 8
    config.eval_batch_size = 8
    config.num_train_steps = 4
    config.warmup_steps = 1
    config.log_every_steps = 2
    config.eval_every_steps = 4
    config.checkpoint_every_steps = 2
    config.model.width = 32
    config.model.mlp_dim = 32
    config.model.tower_hidden = 32
    config.model.dropout = 0.0
    return config


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("records") / "synthetic")
    synthetic.write(path, SMALL_CORPUS, seed=0)
    return path


@pytest.fixture(scope="session", autouse=True)
def eight_devices():
    assert jax.device_count() == 8, "tests expect 8 fake CPU devices (XLA_FLAGS set in conftest)"
