import os
import subprocess
import sys

from mmjax import cli
from tests.tiny import REPO


def test_flag_names_may_be_spelt_with_hyphens_but_config_overrides_and_values_are_kept():
    assert cli._underscored("--input-only") == "--input_only"
    assert cli._underscored("--input-batches=5") == "--input_batches=5"
    assert cli._underscored("--output=/tmp/my-dir") == "--output=/tmp/my-dir"
    assert cli._underscored("--config.data.dir=a-b") == "--config.data.dir=a-b"
    assert cli._underscored("positional-arg") == "positional-arg"


def test_console_scripts_run_from_anywhere_and_configs_find_their_siblings(tmp_path):
    """``mmjax-evaluate`` (installed by pip) from another directory: the config file's imports of
    ``configs.soft_share`` and ``configs.common`` resolve beside it, though configs/ is no package."""
    script = os.path.join(os.path.dirname(sys.executable), "mmjax-evaluate")
    result = subprocess.run([script, f"--config={REPO}/configs/cmma.py", f"--workdir={tmp_path}/none"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""})
    assert result.returncode == 2, result.stderr
    assert f"mmjax.evaluate: error: no checkpoints in workdir '{tmp_path}/none'" in result.stderr
