"""Test setup: 8 fake CPU devices (set before jax is imported) and a small synthetic corpus."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

from mmjax.data.corpora import synthetic  # noqa: E402
from tests.tiny import SMALL_CORPUS  # noqa: E402


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("records") / "synthetic")
    synthetic.write(path, SMALL_CORPUS, seed=0)
    return path


@pytest.fixture(scope="session", autouse=True)
def eight_devices():
    assert jax.device_count() == 8, "tests expect 8 fake CPU devices (XLA_FLAGS set in conftest)"
