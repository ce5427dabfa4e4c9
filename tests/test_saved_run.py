import json
import math

from mmjax import saved_run


def test_write_json_is_strict_json_with_nan_as_null(tmp_path):
    path = str(tmp_path / "eval.json")
    saved_run.write_json(path, {"humor": {"macro_f1": float("nan"), "support": 0, "scores": [1.5, math.inf]},
                                "labels": ("none", "humor")})

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    with open(path, encoding="utf-8") as f:
        value = json.load(f, parse_constant=refuse)
    assert value == {"humor": {"macro_f1": None, "support": 0, "scores": [1.5, None]}, "labels": ["none", "humor"]}
    assert not [f for f in tmp_path.iterdir() if f.name.endswith(".tmp")]
