"""The PyTorch twin of the model and its steps (benchmarks/torch_twin.py) against the JAX ones."""

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional peer of the benchmark (pip install torch)")

from benchmarks import torch_twin  # noqa: E402
from mmjax import inputs, measurements, prepared_records, setup as setup_lib, sharding  # noqa: E402
from tests.tiny import tiny_config  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tests share the cores with XLA's thread pool: a second torch thread only contends."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(records_dir):
    """(config, manifest, setup, initial params, a training batch) of the tiny config, which has
    no dropout: the JAX and the PyTorch train steps compute the same thing."""
    config = tiny_config(records_dir)
    manifest = prepared_records.load_or_prepare(config)
    s = setup_lib.build(config, jax.devices()[:1], manifest=manifest)
    params = jax.device_get(setup_lib.initial_state(s).params)
    return config, manifest, s, params, next(iter(inputs.train_dataset(config, manifest, 0, 1)))


def _twin(config, manifest, params):
    twin = torch_twin.TorchTwin(config, manifest)
    torch_twin.load_jax_params(twin, params)
    return twin


def test_twin_has_the_jax_models_parameters_and_outputs_and_learns(tiny):
    config, manifest, s, params, batch = tiny
    twin = _twin(config, manifest, params)
    assert torch_twin.parameter_count(twin) == measurements.parameter_counts(params)["total"]
    check = torch_twin.compare(config, manifest, s.model, params, twin, batch)
    assert check["max_abs_logit"] > 0.5 and check["max_abs_logit_difference"] < 1e-4
    assert check["loss_difference"] < 1e-5 * check["loss_jax"]

    step, torch_batch = torch_twin.TorchTrainStep(twin, config, manifest), torch_twin.to_torch(batch)
    losses = [float(step(torch_batch)["loss"]) for _ in range(3)]  # the first at the warm-up's learning rate 0
    assert losses[0] == pytest.approx(check["loss_twin"], rel=1e-6) and losses[2] < losses[1] - 1


@pytest.mark.slow  # compiles the JAX train and eval steps (~15 s on 2 cores)
def test_twin_steps_are_the_jax_steps(tiny):
    config, manifest, s, params, batch = tiny
    twin = _twin(config, manifest, params)
    state = setup_lib.initial_state(s)

    validation = next(inputs.eval_batches(config, manifest, "validation", 0, 1))
    jax_eval = jax.device_get(setup_lib.jit_eval_step(s)(state.params, sharding.global_batch(validation, s.mesh)))
    twin_eval = torch_twin.TorchEvalStep(twin)(torch_twin.to_torch(validation))
    for task in config.tasks:
        np.testing.assert_array_equal(twin_eval[f"{task}/confusion"], jax_eval[f"{task}/confusion"])
        np.testing.assert_array_equal(twin_eval[f"predicted/{task}"], jax_eval["rows"][f"predicted/{task}"])
        np.testing.assert_allclose(float(twin_eval[f"{task}/loss_sum"]), jax_eval[f"{task}/loss_sum"], rtol=1e-5)

    # Train steps on a repeated batch: the same losses, gradient norms and training accuracy.
    jax_step, _ = setup_lib.compile_train_step(s, config)
    twin_step, torch_batch = torch_twin.TorchTrainStep(twin, config, manifest), torch_twin.to_torch(batch)
    keys = ["loss", "grad_norm", *(f"{t}/correct" for t in config.tasks)]
    jax_metrics, twin_metrics = [], []
    for _ in range(4):
        state, metrics = jax_step(state, sharding.global_batch(batch, s.mesh))
        jax_metrics.append([float(metrics[k]) for k in keys])
        metrics = twin_step(torch_batch)
        twin_metrics.append([float(metrics[k]) for k in keys])
    np.testing.assert_allclose(twin_metrics, jax_metrics, rtol=1e-5)


def test_twin_names_the_settings_it_does_not_implement(records_dir):
    config = tiny_config(records_dir)
    config.model.fusion, config.loss_balancing = "gated", "uncertainty"
    with pytest.raises(NotImplementedError, match=r"config.model.fusion='gated', config.loss_balancing='uncertainty'"):
        torch_twin.TorchTwin(config, prepared_records.load_or_prepare(config))
