"""Chapter 5: speeds of learning, the chain network's gradient products, the |wσ′| ≥ 1 interval."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnjax import activations, autodiff, backprop, costs, init
from nnjax.network import Network
from nnjax.unstable_gradient import (
    chain_bias_gradients,
    chain_factors,
    chain_forward,
    large_gradient_width,
    layer_speeds,
    measured_width,
    speeds_during_training,
    zero_z_biases,
)

NET = Network((6, 5, 4, 3, 2), activations.SIGMOID, activations.SIGMOID, costs.CROSS_ENTROPY)


def data(key, m=20):
    kx, ky = jax.random.split(key)
    return jax.random.uniform(kx, (m, 6), jnp.float64), jax.random.randint(ky, (m,), 0, 2)


def test_layer_speeds_are_the_hidden_bias_gradient_norms():
    params = init.init_params(jax.random.key(0), NET.sizes, "default", jnp.float64)
    x, y = data(jax.random.key(1))
    speeds = layer_speeds(backprop.make_grad(NET), params, x, y)
    reference = autodiff.make_grad(NET)(params, x, y)
    assert speeds.shape == (3,)  # hidden layers only
    np.testing.assert_allclose(speeds, [np.linalg.norm(g["b"]) for g in reference[:-1]], rtol=1e-10)


def test_speeds_during_training_follow_full_batch_descent():
    params = init.init_params(jax.random.key(2), NET.sizes, "default", jnp.float64)
    x, y = data(jax.random.key(3))
    grad = backprop.make_grad(NET)
    opt = optax.sgd(0.5)
    final, speeds = speeds_during_training(grad, opt, 4)(params, x, y)
    assert speeds.shape == (5, 3)
    manual, state = params, opt.init(params)
    for e in range(4):
        np.testing.assert_allclose(speeds[e], layer_speeds(grad, manual, x, y), rtol=1e-8)
        updates, state = opt.update(grad(manual, x, y), state, manual)
        manual = optax.apply_updates(manual, updates)
    np.testing.assert_allclose(speeds[4], layer_speeds(grad, manual, x, y), rtol=1e-8)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-8), final, manual)
    with pytest.raises(ValueError, match="epochs must be a non-negative integer"):
        speeds_during_training(grad, opt, -1)


def test_chain_bias_gradients_match_autodiff():
    kw, kb = jax.random.split(jax.random.key(4))
    w, b = jax.random.normal(kw, (5,), jnp.float64), jax.random.normal(kb, (5,), jnp.float64)
    x, y = 0.3, 0.8

    def cost(b):
        _, a = chain_forward(w, b, x)
        return 0.5 * (a[-1] - y) ** 2

    a_last = chain_forward(w, b, x)[1][-1]
    np.testing.assert_allclose(chain_bias_gradients(w, b, x, a_last - y), jax.grad(cost)(b),
                               rtol=1e-10)


def test_small_weights_make_the_gradient_vanish():
    w = jnp.full(6, 0.9, jnp.float64)
    b = jnp.zeros(6, jnp.float64)
    factors = chain_factors(w, b, 0.5)
    assert bool(jnp.all(jnp.abs(factors) <= 0.25 * 0.9))
    g = chain_bias_gradients(w, b, 0.5, 1.0)
    assert bool(jnp.all(jnp.abs(g[:-1]) < jnp.abs(g[1:])))  # earlier layers learn more slowly


def test_all_w_100_with_z_0_explodes_by_25_per_layer():
    w = jnp.full(5, 100.0, jnp.float64)
    b = zero_z_biases(w, 0.7)
    zs, _ = chain_forward(w, b, 0.7)
    # z = 0 is itself unstable: a rounding error in z_1 grows 25× per layer (σ′(0)·100)
    np.testing.assert_allclose(zs, 0.0, atol=1e-7)
    np.testing.assert_allclose(chain_factors(w, b, 0.7), 25.0, rtol=1e-8)
    g = chain_bias_gradients(w, b, 0.7, 1.0)
    np.testing.assert_allclose(g[0] / g[-1], 25.0**4, rtol=1e-8)


@pytest.mark.parametrize("w", [4.5, 6.9, 10.0, 50.0, -8.0])
def test_width_formula_matches_brute_force(w):
    assert float(measured_width(w, b=1.3)) == pytest.approx(float(large_gradient_width(w)),
                                                            abs=2e-4)


def test_width_is_zero_up_to_4_and_largest_045_near_69():
    assert float(large_gradient_width(3.0)) == 0.0 == float(measured_width(3.0))
    ws = jnp.linspace(4.0, 40.0, 36_001)
    widths = large_gradient_width(ws)
    i = int(jnp.argmax(widths))
    assert float(ws[i]) == pytest.approx(6.9, abs=0.1)
    assert float(widths[i]) == pytest.approx(0.45, abs=0.005)
