"""The benchmark command (mmjax.benchmark): it prepares a synthetic config's records as training does."""

import os

from tests.tiny import run_module


def test_a_synthetic_configs_records_are_generated_on_first_use(tmp_path):
    code, output = run_module("mmjax.benchmark", "--config=configs/tiny.py", f"--config.data.dir={tmp_path}/synth",
                              "--summary", timeout=300)
    assert code == 0 and "total                            418,064" in output, output
    assert os.path.isfile(tmp_path / "synth" / "manifest.json")
