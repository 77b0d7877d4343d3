"""Sweeps as one program: member i of a vmapped sweep equals configuration i trained alone."""

from functools import partial

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import activations, backprop, costs, init, monitor, network, optim, sweep, train
from nnjax.network import Network

NET = Network((8, 6, 3), activations.SIGMOID, activations.SIGMOID, costs.CROSS_ENTROPY)
N = 60


@pytest.fixture(scope="module")
def problem():
    x = jax.random.uniform(jax.random.key(0), (N, 8))
    y = jnp.argmax(x[:, :3], axis=1).astype(jnp.int32)
    keys = jax.random.split(jax.random.key(1), 3)
    inits = [init.init_params(k, NET.sizes, "default")
             for k in jax.random.split(jax.random.key(2), 3)]
    return x, y, keys, inits


@pytest.mark.slow
def test_member_i_equals_configuration_i_trained_alone(problem):
    """Three (η, λ) settings, two epochs each, at η small enough that float noise stays small."""
    x, y, keys, inits = problem
    etas, lmbdas = [0.05, 0.2, 0.5], [0.0, 5.0, 50.0]
    evaluate = partial(network.evaluate, net=NET)
    grad = backprop.make_grad(NET)
    opt = optim.sgd(0.1, lmbda=1.0, n=N)
    state = sweep.init(sweep.stack(inits), opt, {"learning_rate": jnp.array(etas),
                                                 "lmbda": jnp.array(lmbdas)}, keys)
    state, hist = train.fit(train.make_epoch(grad, opt, 10, members=True), state, (x, y), epochs=2,
                            pieces=[monitor.Evaluate(evaluate, (x, y), True, optim.l2_penalty,
                                                     members=True)])
    params = state.params
    assert sweep.size(params) == 3 and len(hist["evaluation_accuracy"]) == 2
    for i, (eta, lmbda) in enumerate(zip(etas, lmbdas)):  # the same driver, one network
        one = optim.sgd(eta, lmbda=lmbda, n=N)
        alone, h = train.fit(train.make_epoch(grad, one, 10),
                             train.State(inits[i], one.init(inits[i]), keys[i]), (x, y), epochs=2,
                             pieces=[monitor.Evaluate(evaluate, (x, y), True, optim.l2_penalty)])
        chex.assert_trees_all_close(sweep.member(params, i), alone.params, rtol=1e-5, atol=1e-6)
        assert [acc[i] for acc in hist["evaluation_accuracy"]] == h["evaluation_accuracy"]
        np.testing.assert_allclose([c[i] for c in hist["training_cost"]], h["training_cost"],
                                   rtol=1e-5)


@pytest.mark.slow
def test_members_really_differ(problem):
    """The check above is not vacuous: different η give different parameters."""
    x, y, keys, inits = problem
    same = sweep.stack([inits[0]] * 2)
    opt = optim.sgd(0.1)
    state = sweep.init(same, opt, {"learning_rate": jnp.array([0.1, 1.0])},
                       jnp.stack([keys[0], keys[0]]))
    params = train.fit(train.make_epoch(backprop.make_grad(NET), opt, 10, members=True),
                       state, (x, y), epochs=1)[0].params
    assert not np.allclose(sweep.member(params, 0)[0]["w"], sweep.member(params, 1)[0]["w"])


def test_stack_member_round_trip(problem):
    _, _, _, inits = problem
    stacked = sweep.stack(inits)
    assert stacked[0]["w"].shape == (3, 6, 8)
    for i in range(3):
        chex.assert_trees_all_equal(sweep.member(stacked, i), inits[i])


def test_wrong_number_of_values_raises(problem):
    x, y, keys, inits = problem
    with pytest.raises(ValueError, match=r"must have shape \(3,\)"):
        sweep.init(sweep.stack(inits), optim.sgd(0.1), {"learning_rate": jnp.array([0.1, 0.2])},
                   keys)
