import json
import os

import pytest

from configs import cmma
from mmjax import selection, sweep
from mmjax.errors import ConfigError
from tests.tiny import run_module, scored_checkpoints, tiny_config

# The subprocess compiles like this test process (conftest): one train step per point and seed.
QUICK_XLA = {"XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"}


def test_commas_inside_brackets_or_quotes_do_not_split_values():
    assert sweep.split_values("1e-3, 3e-3") == ["1e-3", "3e-3"]
    assert sweep.split_values('("text",),("text","audio")') == ['("text",)', '("text","audio")']
    assert sweep.split_values("'a,b',c") == ["'a,b'", "c"]


def test_grid_values_take_the_type_of_the_config_key():
    config = cmma.get_config()
    grid = sweep.parse_grid(["learning_rate=1e-3,3", "model.text_encoder=ngram,'scratch'",
                             'model.modalities=("text",),["text","audio"]', "model.ngram.orders=2,3"], config)
    assert grid == [("learning_rate", [0.001, 3.0]), ("model.text_encoder", ["ngram", "scratch"]),
                    ("model.modalities", [("text",), ("text", "audio")]), ("model.ngram.orders", [2, 3])]
    assert isinstance(grid[0][1][1], float)
    points = sweep.points(grid)
    assert len(points) == 2 * 2 * 2 * 2
    assert points[0] == {"learning_rate": 0.001, "model.text_encoder": "ngram", "model.modalities": ("text",),
                         "model.ngram.orders": 2}


@pytest.mark.parametrize("spec, message", [
    ("model.widht=32", "'model.widht' is not a key of the config"),
    ("learning_rate=fast", "'fast' is not a Python literal of type float"),
    ("model.ngram.orders=2.5", "'2.5' is not a int"),
    ("learning_rate", "expected KEY=VALUE"),
    ("seed=0,1", "give seeds with --seeds"),
    ("checkpoint_selection=joint,per_task", "the ranking would favour it"),
])
def test_a_bad_grid_is_one_error_naming_the_key(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        sweep.parse_grid([spec], cmma.get_config())


def test_every_point_is_checked_before_the_first_trains(records_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"config.model.sharing='hadr' is not one of"):
        sweep.sweep(tiny_config(records_dir), str(tmp_path / "sweep"), ["model.sharing=soft,hadr"], [0])
    assert not (tmp_path / "sweep").exists()  # nothing trained


def test_a_key_given_twice_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        sweep.parse_grid(["learning_rate=1e-3", "learning_rate=3e-3"], cmma.get_config())


def test_overrides_apply_to_a_copy_and_print_as_flags_train_parses_back():
    config = cmma.get_config()
    changed = sweep.with_overrides(config, {"learning_rate": 0.01, "model.modalities": ("text", "audio")})
    assert changed.learning_rate == 0.01 and changed.model.modalities == ("text", "audio")
    assert config.learning_rate != 0.01 and config.model.modalities == ("text",)
    assert sweep.override_flag("model.modalities", ("text",)) == "'--config.model.modalities=('\"'\"'text'\"'\"',)'"
    assert sweep.override_flag("model.text_encoder", "ngram") == "--config.model.text_encoder=ngram"
    assert sweep.point_name(3, {"model.modalities": ("text",), "learning_rate": 0.01}) == \
        "03_model.modalities=text,learning_rate=0.01"


def test_the_printed_train_command_keeps_the_sweeps_own_config_flags():
    args = ["--config=c.py", "--config.num_train_steps=50", "--grid=learning_rate=1e-3,2e-3",
            "--config.data.dir", "data_cache/x", "--seeds=0,1", "--config.model.frozen"]
    assert sweep.argv_overrides(args) == ["--config.num_train_steps=50", "--config.data.dir=data_cache/x",
                                          "--config.model.frozen"]


@pytest.mark.slow
def test_a_sweep_trains_each_point_and_seed_and_ranks_them_by_validation(records_dir, tmp_path):
    workdir = tmp_path / "sweep"
    args = ("mmjax.sweep", "--config=tests/tiny.py", f"--config.data.dir={records_dir}", f"--workdir={workdir}",
            "--grid=learning_rate=1e-4,3e-3", "--seeds=0,1")
    code, out = run_module(*args, env=QUICK_XLA)
    assert code == 0, out
    result = json.loads((workdir / sweep.RESULTS).read_text())
    assert result["seeds"] == [0, 1]
    ranked = result["points"]
    assert sorted(p["overrides"]["learning_rate"] for p in ranked) == [1e-4, 3e-3]
    assert ranked[0]["held_out_mean"] >= ranked[1]["held_out_mean"]  # ranked by the held-out score
    for point in ranked:
        assert [r["seed"] for r in point["runs"]] == [0, 1]
        scores = [r["score"] for r in point["runs"]]
        assert point["mean"] == pytest.approx(sum(scores) / 2)
        assert point["held_out_mean"] == pytest.approx(sum(r["held_out"] for r in point["runs"]) / 2)
        for run in point["runs"]:  # the score is that of the run's best checkpoint, as logged
            logged = [json.loads(line) for line in open(os.path.join(run["workdir"], "metrics.jsonl"))]
            validation = {e["step"]: e["score"] for e in logged if e["split"] == "validation"}
            assert run["score"] == max(validation.values()) == validation[run["step"]]
            # Each validation saved its rows; the held-out score is read from them.
            assert sorted(selection.saved_rows(run["workdir"])) == sorted(validation)
            assert 0.0 <= run["held_out"] <= 1.0
            assert json.load(open(os.path.join(run["workdir"], "config.json")))["seed"] == run["seed"]
    # Progress lines (the command logs as "__main__") and the winner's command.
    assert "sweep point 2/2, seed 1: {'learning_rate': 0.003}" in out and "best validation score" in out
    assert "train it with" in out and f"--config.learning_rate={ranked[0]['overrides']['learning_rate']!r}" in out
    # Run again: every run is finished, so the sweep only reads them and ranks the same.
    code, again = run_module(*args, env=QUICK_XLA)
    assert code == 0, again
    assert again.count("is trained to config.num_train_steps=4") == 4
    assert json.loads((workdir / sweep.RESULTS).read_text())["points"] == ranked


def test_a_run_with_per_task_selection_ranks_by_the_mean_of_each_tasks_best(tmp_path):
    workdir = str(tmp_path / "run")
    scored_checkpoints(workdir, {1: {"sentiment": 0.5, "emotion": 0.1}, 2: {"sentiment": 0.35, "emotion": 0.3},
                                 3: {"sentiment": 0.2, "emotion": 0.2}})
    config = cmma.get_config()
    config.tasks = ("sentiment", "emotion")
    best = sweep.best_validation(workdir, config)
    assert best == {"step": {"sentiment": 1, "emotion": 2}, "score": pytest.approx(0.4),
                    "tasks": {"sentiment/macro_f1": 0.5, "emotion/macro_f1": 0.3}}
    config.checkpoint_selection = "joint"  # the best mean of the two: step 2's
    assert sweep.best_validation(workdir, config) == {"step": 2, "score": pytest.approx(0.325),
                                                      "tasks": {"sentiment/macro_f1": 0.35, "emotion/macro_f1": 0.3}}


def test_the_ranking_prints_scores_in_percent_and_says_so():
    ranked = [{"mean": 0.3312, "std": 0.0021, "runs": [{}, {}], "overrides": {"learning_rate": 5e-3}},
              {"mean": 0.3, "std": 0.0, "runs": [{}], "overrides": {"learning_rate": 2e-3}}]
    what, header, first, second = sweep.format_ranking(ranked, "macro_f1").splitlines()
    assert what == ("validation score: the mean over tasks of macro_f1 (Pearson r for a regression task), in %; "
                    "ranked by the best score")
    assert "validation score (%)" in header
    assert "33.12 ± 0.21" in first and "--config.learning_rate=0.005" in first
    assert "30.00" in second and "±" not in second  # one seed: no spread
    for point, held_out in zip(ranked, (0.3201, 0.305)):
        point.update(held_out_mean=held_out, held_out_std=0.001)
    what, header, first, second = sweep.format_ranking(ranked, "macro_f1").splitlines()
    assert "ranked by the held-out score" in what and "held-out score (%)" in header
    assert "32.01 ± 0.10" in first and "33.12 ± 0.21" in first and "30.50" in second


def test_points_rank_by_the_held_out_score_where_every_run_has_one():
    runs = lambda *pairs: [{"score": s, "held_out": h} for s, h in pairs]  # noqa: E731
    noisy = sweep.summarise({"model.dropout": 0.0}, runs((0.34, 0.31), (0.33, 0.30)))
    steady = sweep.summarise({"model.dropout": 0.1}, runs((0.33, 0.32), (0.32, 0.32)))
    assert noisy["mean"] > steady["mean"] and noisy["held_out_mean"] == pytest.approx(0.305)
    assert sweep.rank_points([noisy, steady]) == [steady, noisy]
    older = sweep.summarise({"model.dropout": 0.2}, runs((0.35, None)))  # a run that saved no rows
    assert "held_out_mean" not in older
    assert sweep.rank_points([noisy, steady, older]) == [older, noisy, steady]  # one lacks it: all by the best score
