import json
import os

import matplotlib.image

import pytest

from mmjax import errors, evaluation, restored_run, run_evaluation, setup as setup_lib
from mmjax.data import records
from tests.tiny import run_module


def _assert_reports_close(got, want, path="report"):
    """Equal structure and values; floats to 1e-6 (another device count sums in another order)."""
    if isinstance(want, dict):
        assert list(got) == list(want), path
        for key in want:
            _assert_reports_close(got[key], want[key], f"{path}/{key}")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6, nan_ok=True), path
    else:
        assert got == want, path


def test_restored_evaluation_matches_in_memory_and_one_device_matches_eight(trained_run, tmp_path):
    config, workdir, state = trained_run
    s = setup_lib.build(config)
    with records.reading_test_split():
        in_memory = evaluation.run(setup_lib.jit_eval_step(s), state.eval_params(), config, s.manifest, "test", s.mesh,
                                   s.rules, details=True)
    eight = run_evaluation.evaluate(None, workdir, split="test")  # the workdir's own config, latest step
    assert eight == in_memory
    assert {"by_speaker", "by_modalities", "per_class"} <= set(eight["sentiment"])
    assert sum(r["support"] for r in eight.values()) > 0

    # A fresh process with one CPU device restores the 8-device checkpoint, as two "seeds".
    for seed in ("a", "b"):
        os.symlink(workdir, tmp_path / f"run_{seed}")
    code, out = run_module("mmjax.evaluate", f"--workdir={tmp_path}/run_{{seed}}", "--seeds=a,b", "--split=test")
    assert code == 0, out
    assert "1 cpu device(s)" in out and "mean ± sample std" in out
    with open(os.path.join(workdir, "eval_test.json")) as f:
        one = json.load(f)
    assert one["split"] == "test" and one["step"] == 4
    _assert_reports_close(one["tasks"], eight)
    with open(tmp_path / "run_a-b" / "eval_test_seeds.json") as f:
        seeds = json.load(f)
    assert seeds["seeds"] == ["a", "b"]
    assert [(run["seed"], run["step"]) for run in seeds["runs"]] == [("a", 4), ("b", 4)]  # "latest" resolved
    assert seeds["runs"][0]["tasks"]["sarcasm"]["macro_f1"] == pytest.approx(eight["sarcasm"]["macro_f1"], abs=1e-6)
    assert "each seed (--step=latest)" in out and "\na                4" in out
    for task, r in eight.items():
        assert seeds["tasks"][task]["macro_f1"]["mean"] == pytest.approx(r["macro_f1"], abs=1e-6)
        assert seeds["tasks"][task]["macro_f1"]["std"] == pytest.approx(0.0, abs=1e-6)

    for task, name in one["confusion_png"].items():
        assert name == f"confusion_test_{task}.png"
        image = matplotlib.image.imread(os.path.join(workdir, name))
        assert image.ndim == 3 and min(image.shape[:2]) > 200  # a figure, drawn (tests/test_figures.py)


def test_test_split_is_refused_outside_final_evaluation(trained_run):
    config, _, state = trained_run
    with pytest.raises(errors.ForbiddenSplitError, match="mmjax.evaluate --split=test"):
        records.DialogueSource(config.data.dir, "test")
    s = setup_lib.build(config)
    with pytest.raises(errors.ForbiddenSplitError):
        evaluation.run(setup_lib.jit_eval_step(s), state.params, config, s.manifest, "test", s.mesh, s.rules)
    with records.reading_test_split():
        assert len(records.DialogueSource(config.data.dir, "test")) > 0
    with pytest.raises(errors.ForbiddenSplitError):  # the permission ends with the context
        records.DialogueSource(config.data.dir, "test")


def test_mesh_that_does_not_fit_falls_back_to_data_parallel(trained_run):
    config = trained_run[0].copy_and_resolve_references()
    config.mesh.shape.data, config.mesh.shape.fsdp = 2, 4
    config.eval_batch_size = 6
    fitted = restored_run.fit_to_devices(config, 4)
    assert dict(fitted.mesh.shape) == {"data": -1, "fsdp": 1, "model": 1}
    assert fitted.eval_batch_size == 8
    assert restored_run.fit_to_devices(fitted, 4) is fitted and config.mesh.shape.data == 2


@pytest.mark.parametrize("workdir, seeds, message", [
    ("runs/soft", ["0", "1"], "needs {seed} in --workdir"),
    ("runs/soft_s{seed}", ["0"], "at least two different seeds"),
    ("runs/soft_s{seed}", ["0", "../x"], "not names made of"),
])
def test_bad_seed_arguments_are_one_clear_error(workdir, seeds, message):
    with pytest.raises(errors.MmjaxError, match=message.replace("{", r"\{").replace("}", r"\}")):
        run_evaluation.seed_workdirs(workdir, seeds)


def test_every_seeds_run_is_checked_before_the_first_is_evaluated(trained_run, tmp_path):
    (tmp_path / "run_s0").symlink_to(trained_run[1], target_is_directory=True)
    with pytest.raises(errors.MmjaxError, match=r"workdir '.*run_s5' does not exist"):
        run_evaluation.seed_workdirs(str(tmp_path / "run_s{seed}"), ["0", "5"])
    (tmp_path / "run_s5").mkdir()
    with pytest.raises(errors.MmjaxError, match=r"no checkpoints in workdir '.*run_s5': train it first"):
        run_evaluation.seed_workdirs(str(tmp_path / "run_s{seed}"), ["0", "5"])


def test_unknown_step_names_what_exists(trained_run):
    with pytest.raises(errors.MmjaxError, match=r"no checkpoint for step 3; it has \[2, 4\]"):
        run_evaluation.evaluate(None, trained_run[1], split="validation", step=3)


def test_a_config_whose_model_differs_from_the_runs_is_named_not_called_damage(trained_run, tmp_path):
    config, workdir, _ = trained_run
    other = config.copy_and_resolve_references()
    other.model.width = config.model.width * 2
    for step in ("best", "latest"):  # a step restored at once; the newest step that restores, of none
        with pytest.raises(errors.ConfigError, match=r"does not restore with the given --config, which differs from "
                                                     r"the run's config.json in keys that may change its parameters: "
                                                     r"model.width=\d+ \(recorded \d+\); leave --config out"):
            restored_run.restore(workdir, step, other)
    with pytest.raises(errors.MmjaxError, match=r"no checkpoint for step 3"):  # not a restore failure: as it is
        restored_run.restore(workdir, 3, other)


def test_unreadable_workdir_and_records_files_are_one_error_naming_them(trained_run, tmp_path):
    import shutil
    config, workdir, _ = trained_run
    copy = tmp_path / "run"
    shutil.copytree(workdir, copy)
    (copy / "config.json").write_text('{"model": ', encoding="utf-8")
    with pytest.raises(errors.MmjaxError, match=r"config.json' is not a valid JSON file \(Expecting value"):
        restored_run.restore(str(copy))
    records_copy = tmp_path / "records"
    shutil.copytree(config.data.dir, records_copy)
    os.remove(records_copy / "validation.turns.npy")
    with pytest.raises(errors.RecordError, match=r"validation.turns.npy' is missing: the records at .* are "
                                                 r"incomplete; run `python -m mmjax.prepare` again"):
        records.DialogueSource(str(records_copy), "validation")
    (records_copy / records.MANIFEST).write_text("{", encoding="utf-8")
    with pytest.raises(errors.RecordError, match=r"manifest.json' is not a valid JSON file .*; run `python -m "
                                                 r"mmjax.prepare` again"):
        records.load_manifest(str(records_copy))
    (records_copy / records.MANIFEST).write_text("[1]", encoding="utf-8")
    with pytest.raises(errors.RecordError, match=r"manifest.json' holds a JSON list, expected an object"):
        records.load_manifest(str(records_copy))
