"""The per-class and prior-shift analysis (benchmarks/prior_shift.py) on toy arrays."""

import numpy as np

from benchmarks import prior_shift
from mmjax.tasks import Task


def test_a_shift_by_the_log_prior_moves_decisions_towards_rare_classes():
    log_p = np.log([[0.6, 0.4], [0.9, 0.1]])
    log_prior = np.log([0.8, 0.2])
    np.testing.assert_array_equal(prior_shift.shifted_predictions(log_p, log_prior, 0.0), [0, 0])
    np.testing.assert_array_equal(prior_shift.shifted_predictions(log_p, log_prior, 1.0), [1, 0])


def test_the_halving_gain_is_larger_for_a_model_biased_against_the_rare_class():
    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.3).astype(int)
    dialogue = np.arange(400) // 4
    score = labels + rng.normal(0, 0.5, 400)
    task = Task("humor", ("none", "humor"))
    log_prior = np.log([0.7, 0.3])

    def gain(threshold):  # a model deciding class 1 above ``threshold``
        logits = np.stack([np.zeros(400), 4 * (score - threshold)], -1)
        return prior_shift.halving_gain(task, logits, labels, dialogue, log_prior, halvings=5, rng=np.random.default_rng(1))

    (biased, tau), (fair, _) = gain(1.0), gain(0.5)
    assert tau > 0  # towards the rare class
    assert biased > 0.05 and biased > 2 * fair
