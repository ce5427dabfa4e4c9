import os
import subprocess
import sys

import pytest

from mmjax import cli
from tests.tiny import REPO, run_module


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
    assert f"mmjax.evaluate: error: workdir '{tmp_path}/none' does not exist" in result.stderr


def test_a_users_own_config_elsewhere_imports_the_shipped_ones_and_a_bad_import_is_one_line(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "debate.py").write_text(
        "from configs import cmma\n\ndef get_config():\n    config = cmma.get_config()\n"
        f"    config.data.dir = {str(tmp_path / 'absent')!r}\n    return config\n")
    (tmp_path / "mine" / "broken.py").write_text("from configs import cmmma\n\ndef get_config():\n    pass\n")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    for name, error in (("debate", f"no prepared corpus at '{tmp_path}/absent'"),
                        ("broken", f"--config={tmp_path}/mine/broken.py: cannot import name 'cmmma' from 'configs'")):
        result = subprocess.run([sys.executable, "-m", "mmjax.benchmark", f"--config={tmp_path}/mine/{name}.py",
                                 "--summary"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode != 0 and f"mmjax.benchmark: error: {error}" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("args, error", [
    (["--config=configs/soft_shar.py"], "--config=configs/soft_shar.py: no such config file"),
    (["--config=configs/soft_share.py", "--config.num_train_stpes=5"],
     "unknown config key 'config.num_train_stpes'; did you mean 'num_train_steps'?"),
    (["--config=configs/soft_share.py", "--config.model.nope=1"], "unknown config key 'config.model.nope'"),
    (["--config=configs/soft_share.py", "--config.data.dri=x"],
     "unknown config key 'config.data.dri'; did you mean 'dir'?"),
    (["--config=configs/soft_share.py", "--config.modle.sharing=hard"],
     "unknown config key 'config.modle.sharing'; did you mean 'model'?"),
    (["--config=configs/soft_share.py", "--config.model.sharing=hadr"],
     "config.model.sharing='hadr' is not one of ['hard', 'soft']"),
])
def test_a_bad_config_is_one_line_and_leaves_no_workdir(tmp_path, args, error):
    code, output = run_module("mmjax.train", *args, f"--workdir={tmp_path}/run", timeout=120)
    assert code == 2 and f"mmjax.train: error: {error}\n" in output and "Traceback" not in output, output
    assert not os.path.exists(f"{tmp_path}/run")
