import jax
import numpy as np

from mmjax import benchmark


def test_parameter_counts_per_module_add_up():
    shape = lambda *s: jax.ShapeDtypeStruct(s, np.float32)  # noqa: E731
    params = {"encoder": {"layer_0": {"kernel": shape(4, 8), "bias": shape(8)}, "norm": {"scale": shape(8)}},
              "heads": {"sentiment": {"kernel": shape(8, 3)}}, "log_variance": shape(6)}
    counts = benchmark.parameter_counts(params, depth=2)
    assert counts == {"encoder": 48, "encoder/layer_0": 40, "encoder/norm": 8, "heads": 24,
                      "heads/sentiment": 24, "log_variance": 6, "total": 78}
    assert list(benchmark.parameter_counts(params, depth=1)) == ["encoder", "heads", "log_variance", "total"]
    lines = benchmark.format_parameter_counts(counts).splitlines()
    assert lines[1].startswith("  layer_0") and lines[1].endswith(" 40") and lines[-1].endswith(" 78")
