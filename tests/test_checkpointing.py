import jax
import numpy as np

from mmjax import evaluate, evaluation, sharding, train_step, trainer
from tests.conftest import tiny_config


def test_restored_checkpoint_evaluates_identically(records_dir, tmp_path):
    config = tiny_config(records_dir)
    workdir = str(tmp_path / "run")
    state = trainer.train_and_evaluate(config, workdir)
    s = trainer.setup(config)
    eval_fn = jax.jit(train_step.make_eval_step(s.model),
                      in_shardings=(s.state_shardings.params, sharding.batch_sharding(s.mesh)))
    in_memory = evaluation.run(eval_fn, state.params, config, s.manifest, "test", s.mesh, s.rules)
    restored = evaluate.evaluate(config, workdir, split="test")
    assert restored == in_memory
    assert sum(r["support"] for r in restored.values()) > 0


def test_resume_continues_exactly(records_dir, tmp_path):
    """Stopping after a checkpoint and re-running gives bit-identical parameters (state + data order)."""
    config = tiny_config(records_dir)
    config.model.dropout = 0.1
    straight = trainer.train_and_evaluate(config, str(tmp_path / "straight"))
    config.num_train_steps = 2
    trainer.train_and_evaluate(config, str(tmp_path / "resumed"))
    config.num_train_steps = 4
    resumed = trainer.train_and_evaluate(config, str(tmp_path / "resumed"))
    assert int(resumed.step) == int(straight.step) == 4
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.params), jax.device_get(straight.params))
