import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import ensemble, inputs, prediction, restored_run, run_evaluation, setup as setup_lib, sharding
from mmjax.data import records
from mmjax.models import model as model_lib
from mmjax.tasks import CLASSIFICATION, MULTILABEL, REGRESSION, Task
from tests import test_predict
from tests.tiny import run_module, tiny_config


@pytest.mark.parametrize("kind", [CLASSIFICATION, MULTILABEL, REGRESSION])
def test_combine_gives_the_outputs_of_the_averaged_probabilities_or_values(kind):
    task = Task("t", labels=("a", "b", "c"), kind=kind, value_range=(-1.0, 1.0) if kind == REGRESSION else None)
    outputs = np.random.default_rng(0).normal(size=(3, 4, task.outputs)).astype(np.float32) * 4
    outputs[0, 0] = 60.0  # saturated logits stay finite in the combination
    combined = np.asarray(ensemble.combine(task, jnp.asarray(outputs)))
    assert combined.shape == outputs.shape[1:] and np.isfinite(combined).all()
    if kind == CLASSIFICATION:
        np.testing.assert_allclose(jax.nn.softmax(combined), jax.nn.softmax(outputs).mean(0), rtol=1e-5, atol=1e-7)
    elif kind == MULTILABEL:
        np.testing.assert_allclose(jax.nn.sigmoid(combined), jax.nn.sigmoid(outputs).mean(0), rtol=1e-5, atol=1e-7)
    else:  # the mean of the members' values, each clipped to the range as one model's is
        np.testing.assert_allclose(task.from_unit(combined), task.from_unit(outputs).mean(0), rtol=1e-6)


def test_an_ensemble_of_two_runs_predicts_their_mean_probabilities(trained_run):
    config, workdir, _ = trained_run
    run = restored_run.restore(workdir, 2)  # two members: the run at steps 2 and 4
    s = run.setup
    members = [run.restore_step(2), run.restore_step(4)]
    batch = sharding.global_batch(next(inputs.eval_batches(config, s.manifest, "validation", 0, 1)), s.mesh)
    with sharding.activate(s.mesh, s.rules):
        each = [setup_lib.jit_predict_step(s)(p, batch) for p in members]
        both = setup_lib.jit_predict_step(s, members=2)(ensemble.stack(members, s.state_shardings.params), batch)
    for task in config.tasks:
        assert not np.allclose(each[0][task], each[1][task], atol=1e-4)  # the members differ
        np.testing.assert_allclose(both[task], (each[0][task] + each[1][task]) / 2, rtol=1e-5, atol=1e-6)


def test_an_ensemble_of_copies_of_a_run_evaluates_as_the_run(trained_run, tmp_path):
    _, workdir, _ = trained_run
    for seed in ("a", "b"):
        (tmp_path / f"run_{seed}").symlink_to(workdir)
    single = run_evaluation.evaluate(None, workdir, split="validation", verbose=False)
    copies = run_evaluation.evaluate_ensemble(None, f"{tmp_path}/run_{{seed}}", ["a", "b"], split="validation")
    for task, report in single.items():
        assert copies[task]["confusion"] == report["confusion"]
        assert copies[task]["macro_f1"] == pytest.approx(report["macro_f1"], abs=1e-9)
        assert copies[task]["loss"] == pytest.approx(report["loss"], rel=1e-5)
    assert (tmp_path / "run_a-b" / "eval_validation_ensemble.json").exists()


def test_predict_with_an_ensemble_of_copies_writes_the_runs_predictions(trained_run, tmp_path):
    config, workdir, _ = trained_run
    source = records.DialogueSource(config.data.dir, "validation")
    path = test_predict._export([source[i] for i in range(3)], str(tmp_path))
    for seed in ("a", "b"):
        (tmp_path / f"run_{seed}").symlink_to(workdir)
    prediction.predict(workdir, path, str(tmp_path / "one.jsonl"), progress=False)
    code, out = run_module("mmjax.predict", f"--workdir={tmp_path}/run_{{seed}}", "--seeds=a,b", f"--input={path}",
                           f"--output={tmp_path}/both.jsonl")
    assert code == 0, out
    one, both = ([json.loads(line) for line in open(tmp_path / name)] for name in ("one.jsonl", "both.jsonl"))
    assert len(one) == len(both) > 0
    for a, b in zip(one, both):
        for task in config.tasks:
            assert a[task]["label"] == b[task]["label"]
            np.testing.assert_allclose(list(a[task]["probabilities"].values()),
                                       list(b[task]["probabilities"].values()), atol=2e-6)


def test_members_must_compute_one_function_but_may_have_trained_differently(records_dir):
    manifest = records.load_manifest(records_dir)
    config = tiny_config(records_dir)
    model = model_lib.build_model(config, manifest)
    params = setup_lib.build(config).abstract_state.params
    config.model.dropout, config.model.tie_weight = 0.3, 0.0  # training only: members may differ
    ensemble.check_members([model, model_lib.build_model(config, manifest)], [params, params], ["a", "b"])
    config.model.fusion = "concat"
    with pytest.raises(ValueError, match="b differs from a in fusion"):
        ensemble.check_members([model, model_lib.build_model(config, manifest)], [params, params], ["a", "b"])
