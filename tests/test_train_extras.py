"""Chapter 3's training extras in `nnjax.train.fit`: reported penalty, early stopping, η schedule.

The stopping rules are driven by a scripted evaluation (accuracies fixed in advance) and a
constant gradient, so the test knows exactly which epochs run and at which η.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fitting  # tests/fitting.py: train.fit with the usual pieces
from nnjax import monitor, optim

X = jnp.zeros((20, 3))
Y = jnp.zeros((20,), jnp.int32)
PARAMS = ({"w": jnp.zeros((2, 3)), "b": jnp.zeros((2,))},)


def ones_grad(params, x, y):
    return jax.tree.map(jnp.ones_like, params)


def scripted(accuracies):
    """An evaluate function returning the next scripted accuracy (and cost 0) on each call."""
    it = iter(accuracies)
    return lambda params, x, y: (next(it), 0.0)


def run(accuracies, epochs=50, opt=None, **kw):
    return fitting.fit(PARAMS, ones_grad, opt or optim.sgd(0.5), (X, Y), epochs=epochs,
                       batch_size=5,
                     key=jax.random.key(0), evaluate=scripted(accuracies), evaluation_data=(X, Y),
                       **kw)


@pytest.mark.parametrize("acc, since, want", [
    ([], 0, 0), ([1, 2, 3], 0, 0), ([3, 2, 1], 0, 2), ([1, 3, 3], 0, 1), ([5, 1, 1, 1], 3,
                                                                          1), ([5, 1, 1, 1], 0, 3),
])
def test_epochs_without_improvement(acc, since, want):
    assert monitor.epochs_without_improvement(acc, since) == want


def test_early_stopping_ends_after_n_epochs_without_a_new_best():
    _, hist = run([1, 2, 3, 3, 2, 3, 9, 9, 9], stop_after=3)
    assert hist["epoch"] == [0, 1, 2, 3, 4, 5]  # best at epoch 2; 3, 4, 5 bring nothing new


def test_eta_schedule_halves_on_plateaus_and_stops_at_eta0_over_128():
    eta0 = 0.5
    params, hist = run([7] * 100, epochs=100, halve_eta_after=2)
    # epoch 0 sets the best; then each 2 epochs without a new best halve η: 7 halvings to η₀/128
    want = [eta0] * 3 + [eta0 / 2**k for k in range(1, 7) for _ in range(2)]
    np.testing.assert_allclose(hist["learning_rate"], want)
    assert len(hist["epoch"]) == 15
    # the halved η was really used: each epoch is 4 steps along a gradient of ones
    np.testing.assert_allclose(params[0]["w"], np.full((2, 3), -4 * sum(want)), rtol=1e-6)


def test_eta_schedule_counts_afresh_after_a_new_best():
    _, hist = run([1, 1, 1, 2, 2, 2, 2] + [0] * 40, epochs=8, halve_eta_after=3)
    np.testing.assert_allclose(hist["learning_rate"], [0.5] * 4 + [0.5] * 3 + [0.25])


def test_reported_costs_include_the_penalty_scaled_by_each_set_size():
    lmbda, w = 5.0, jnp.full((2, 3), 0.1)
    params = ({"w": w, "b": jnp.ones((2,))},)
    x_eval = jnp.zeros((7, 3))
    _, hist = fitting.fit(params, lambda p, x, y: jax.tree.map(jnp.zeros_like, p),
                          optim.sgd(0.1), (X, Y),
                        epochs=1, batch_size=5, key=jax.random.key(0),
                        evaluate=lambda p, x, y: (0, 1.0),
                          evaluation_data=(x_eval, jnp.zeros(7, jnp.int32)),
                        monitor_training=True, penalty=lambda p,
                          size: optim.l2_penalty(p, lmbda, size))
    sq = float(jnp.sum(w**2))
    np.testing.assert_allclose(hist["evaluation_cost"], [1.0 + lmbda / (2 * 7) * sq], rtol=1e-6)
    np.testing.assert_allclose(hist["training_cost"], [1.0 + lmbda / (2 * 20) * sq], rtol=1e-6)


@pytest.mark.parametrize("kw, match", [
    (dict(stop_after=0), "stop_after must be a positive number"),
    (dict(halve_eta_after=2.5), "halve_eta_after must be a positive number"),
    (dict(halve_eta_after=10, min_eta_fraction=2.0), "min_eta_fraction must be in"),
])
def test_bad_stopping_options_raise(kw, match):
    with pytest.raises(ValueError, match=match):
        run([1] * 10, **kw)


def test_stopping_rules_need_evaluation_data_and_the_schedule_needs_injected_eta():
    with pytest.raises(ValueError, match="pass evaluation_data"):
        fitting.fit(PARAMS, ones_grad, optim.sgd(0.5), (X, Y), epochs=2, batch_size=5,
                    key=jax.random.key(0),
                  stop_after=3)
    with pytest.raises(ValueError, match="needs η in the optimiser state"):
        run([1] * 10, opt=optax.sgd(0.5), halve_eta_after=2)
