"""Test setup: 8 fake CPU devices (set before jax is imported), a small synthetic corpus and the
real corpora of ``../shared/data`` (prepared once per session)."""

import os
import tempfile

# In this process XLA compiles for speed, not for fast code: tests run their programs a few times,
# so the backend's expensive passes cost more than they save (tests/tiny.py QUICK_COMPILE; the
# long learning run goes to a subprocess with the defaults).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
                           " --xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# One persistent compilation cache for the session, inherited by the subprocess tests: many tests
# compile the same tiny train step, and compiling dominates their time on CPU.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="mmjax-test-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import jax  # noqa: E402
import pytest  # noqa: E402

from mmjax.data.corpora import synthetic  # noqa: E402
from tests import tiny_bert  # noqa: E402
from tests.tiny import REPO, SMALL_CORPUS  # noqa: E402

SHARED_DATA = os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


@pytest.fixture(scope="session")
def records_dir(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("records") / "synthetic")
    synthetic.write(path, SMALL_CORPUS, seed=0)
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A 2-layer, 32-wide BERT checkpoint directory with a WordPiece tokenizer for synthetic text."""
    return tiny_bert.write_checkpoint(tmp_path_factory.mktemp("tiny_bert"), tiny_bert.hf_tensors(
        {**tiny_bert.TINY, "vocab_size": len(tiny_bert.TINY_VOCAB)}))


@pytest.fixture(scope="session", autouse=True)
def eight_devices():
    assert jax.device_count() == 8, "tests expect 8 fake CPU devices (XLA_FLAGS set in conftest)"


def pytest_collection_modifyitems(items):
    """A test that needs ``trained_run`` is end-to-end (it trains a run first): marked slow."""
    for item in items:
        if "trained_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def trained_run(records_dir, tmp_path_factory):
    """A tiny run trained once on the 8-device mesh, shared by the evaluate and predict tests:
    (config, workdir, final state).

    It trains on a copy of the records whose test split is absent, which shows that training,
    validation and model selection never read it; the test files are put back afterwards.
    """
    import shutil

    import jax
    import numpy as np

    from mmjax import trainer
    from tests.tiny import tiny_config

    root = tmp_path_factory.mktemp("trained")
    data = str(root / "records")
    test_files = [f for f in os.listdir(records_dir) if f.startswith("test")]
    shutil.copytree(records_dir, data, ignore=lambda _, names: [n for n in names if n in test_files])
    config = tiny_config(data)
    # With a moving average of the params, which validation, evaluation and prediction must use.
    config.ema_decay = 0.5
    workdir = str(root / "run")
    state = trainer.train_and_evaluate(config, workdir)
    assert not jax.tree.all(jax.tree.map(np.array_equal, state.params, state.ema_params))
    assert not [f for f in os.listdir(data) if f.startswith("test")]  # nor were they regenerated
    for name in test_files:
        shutil.copy(os.path.join(records_dir, name), data)
    return config, workdir, state


@pytest.fixture(scope="session")
def shared_data() -> str:
    """The real corpora (CMMA, MELD, MUStARD) at ../shared/data; skipped where absent, unless
    MMJAX_REQUIRE_SHARED_DATA=1 makes their absence a failure."""
    if not os.path.isdir(SHARED_DATA):
        message = f"the real corpora are not found at {SHARED_DATA}"
        if os.environ.get("MMJAX_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message + " (MMJAX_REQUIRE_SHARED_DATA=1)")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture(scope="session")
def prepared_corpora(shared_data, tmp_path_factory) -> dict[str, dict]:
    """name -> manifest of cmma, meld and mustard (speaker-independent) prepared from shared_data;
    each manifest's records directory is under its "dir" key."""
    from mmjax.data.corpora import cmma, conversion, meld, mustard
    out = {}
    for module in (cmma, meld, mustard):
        name = module.__name__.rsplit(".", 1)[-1]
        path = str(tmp_path_factory.mktemp("real") / name)
        out[name] = {**conversion.convert(module, os.path.join(shared_data, name), path), "dir": path}
    return out
