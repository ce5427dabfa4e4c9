import jax
import numpy as np

from mmjax import measurements


def test_parameter_counts_per_module_add_up():
    shape = lambda *s: jax.ShapeDtypeStruct(s, np.float32)  # noqa: E731
    params = {"encoder": {"layer_0": {"kernel": shape(4, 8), "bias": shape(8)}, "norm": {"scale": shape(8)}},
              "heads": {"sentiment": {"kernel": shape(8, 3)}}, "log_variance": shape(6)}
    counts = measurements.parameter_counts(params, depth=2)
    assert counts == {"encoder": 48, "encoder/layer_0": 40, "encoder/norm": 8, "heads": 24,
                      "heads/sentiment": 24, "log_variance": 6, "total": 78}
    assert list(measurements.parameter_counts(params, depth=1)) == ["encoder", "heads", "log_variance", "total"]
    lines = measurements.format_parameter_counts(counts).splitlines()
    assert lines[1].startswith("  layer_0") and lines[1].endswith(" 40") and lines[-1].endswith(" 78")


def test_timed_steps_count_real_tokens_utterances_and_windows():
    calls = []
    mask = lambda *shape_and_true: np.arange(np.prod(shape_and_true[:-1])).reshape(shape_and_true[:-1]) < shape_and_true[-1]  # noqa: E731
    batches = [{"turn_mask": mask(2, 3, 4), "token_mask": mask(2, 3, 5, 7)},
               {"turn_mask": mask(2, 3, 2), "token_mask": mask(2, 3, 5, 11)}]
    result = measurements._timed(lambda batch: calls.append(batch) or batch["turn_mask"], batches, steps=4, warmup=1)
    assert len(calls) == 5 and calls[1] is batches[1] and calls[2] is batches[0]  # cycles after warm-up
    median = result["median_step_seconds"]
    assert median > 0 and result["step_seconds_p10_p90"][0] <= median <= result["step_seconds_p10_p90"][1]
    # Means over the batches: 3 utterances, 9 real tokens, 2 windows per step.
    np.testing.assert_allclose([result["utterances_per_second"] * median, result["real_tokens_per_second"] * median,
                                result["windows_per_second"] * median], [3, 9, 2])


def test_pipelined_steps_are_dispatched_back_to_back_and_synced_once(monkeypatch):
    batches = [{"turn_mask": np.ones((2, 3), bool), "token_mask": np.ones((2, 3, 4), bool)}]
    synced = []
    block = jax.block_until_ready
    monkeypatch.setattr(jax, "block_until_ready", lambda x: synced.append(x) or block(x))
    add = jax.jit(lambda state, count: state + count, donate_argnums=0)  # as the train step donates its state
    state = [jax.numpy.zeros((4,))]

    def step(batch):
        state[0] = add(state[0], batch["turn_mask"].sum())
        return state[0]

    result = measurements._pipelined(step, batches, steps=5)
    # One sync, on the one state not donated to a later step: the last, which holds all five.
    assert len(synced) == 1 and len(synced[0]) == 1 and float(synced[0][0][0]) == 30
    seconds = result["pipelined_step_seconds"]
    np.testing.assert_allclose([result["utterances_per_second"] * seconds, result["real_tokens_per_second"] * seconds,
                                result["windows_per_second"] * seconds], [6, 24, 2])
