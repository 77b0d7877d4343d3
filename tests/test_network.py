"""Network structure, initialisers, feedforward and evaluation (ch1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import activations, costs, init, network
from nnjax.network import Network


def test_parameter_count_and_layout():
    params = init.init_params(jax.random.key(0), (784, 30, 10), init.large)
    assert network.num_params(params) == 23_860
    assert [p["w"].shape for p in params] == [(30, 784), (10, 30)]  # (n_out, n_in), as the book
    assert [p["b"].shape for p in params] == [(30,), (10,)]
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize("name,w_std", [("large", 1.0), ("default", 1 / np.sqrt(784)),
                                        ("network3", 1 / np.sqrt(300))])
def test_initialiser_scales(name, w_std):
    layer = init.get(name)(jax.random.key(1), 784, 300)
    assert np.std(layer["w"]) == pytest.approx(w_std, rel=0.02)
    assert np.std(layer["b"]) == pytest.approx(1.0, rel=0.15)
    assert abs(float(np.mean(layer["w"]))) < 0.05 * w_std * 10


def test_zeros_and_key_dependence():
    z = init.zeros(jax.random.key(0), 3, 2)
    assert not np.any(z["w"]) and not np.any(z["b"])
    a = init.init_params(jax.random.key(0), (5, 4, 3))
    b = init.init_params(jax.random.key(0), (5, 4, 3))
    c = init.init_params(jax.random.key(1), (5, 4, 3))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                    jax.tree_util.tree_leaves(b)))
    assert not np.array_equal(a[0]["w"], c[0]["w"])


def test_feedforward_matches_the_layer_equation():
    net = Network((4, 3, 2))
    params = init.init_params(jax.random.key(2), net.sizes, init.large, dtype=jnp.float64)
    x = jax.random.uniform(jax.random.key(3), (5, 4), jnp.float64)
    a = x
    for p in params:  # a^l = σ(w^l a^{l−1} + b^l), one example per row
        a = 1 / (1 + np.exp(-(a @ p["w"].T + p["b"][None, :])))
    np.testing.assert_allclose(network.feedforward(params, x, net), a, rtol=1e-12)
    assert network.predict(params, x, net).shape == (5,)


def test_evaluate_counts_and_costs():
    net = Network((4, 3))
    params = ({"w": jnp.eye(3, 4) * 10.0, "b": jnp.zeros(3)},)
    x = jnp.eye(4)[:3].astype(jnp.float32)
    correct, c = network.evaluate(params, x, jnp.array([0, 1, 1]), net)
    assert int(correct) == 2
    assert float(c) == pytest.approx(float(network.cost(params, x, jnp.array([0, 1, 1]), net)))


@pytest.mark.parametrize("kwargs,match", [
    (dict(sizes=(784,)), "at least two"),
    (dict(sizes=(784, 0, 10)), "positive integers"),
    (dict(sizes=(784, 30.0, 10)), "positive integers"),
    (dict(sizes=(4, 2), cost=costs.CROSS_ENTROPY, output=activations.TANH), "sigmoid output"),
    (dict(sizes=(4, 2), cost=costs.LOG_LIKELIHOOD), "softmax output"),
    (dict(sizes=(4, 2), output=activations.SOFTMAX), "log_likelihood"),
    (dict(sizes=(4, 3, 2), activation=activations.SOFTMAX), "only be the output layer"),
])
def test_invalid_networks_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Network(**kwargs)


def test_check_params_names_the_layer_and_shapes():
    net = Network((784, 30, 10))
    params = init.init_params(jax.random.key(0), (784, 30, 10))
    network.check_params(params, net)
    bad = (params[0], {"w": params[1]["w"].T, "b": params[1]["b"]})
    with pytest.raises(ValueError, match=r"layer 2: expected w of shape \(10, 30\)"):
        network.check_params(bad, net)
    with pytest.raises(ValueError, match="must hold 2 layers"):
        network.check_params(params[:1], net)


def test_init_params_refuses_bad_sizes():
    with pytest.raises(ValueError, match="at least two positive integers"):
        init.init_params(jax.random.key(0), (784, -3, 10))
    with pytest.raises(ValueError, match="unknown initialiser"):
        init.init_params(jax.random.key(0), (3, 2), "xavier")
