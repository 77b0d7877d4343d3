"""Chapter 4's building blocks: steps, bumps, towers, side-by-side sums, other activations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from nnjax import activations, network
from nnjax.universality import (
    LIMITS,
    WIGGLY,
    apply,
    bumps,
    hidden_neurons,
    parallel,
    step,
    steps,
    towers,
    weighted_output,
    wiggly,
    wiggly_prime,
)

STEP_ACTIVATIONS = [activations.SIGMOID, activations.TANH, WIGGLY, activations.RELU]


@pytest.mark.parametrize("hidden", STEP_ACTIVATIONS, ids=lambda a: a.name)
def test_step_jumps_from_0_to_1_at_s(hidden):
    c = step(0.37, w=1000.0, hidden=hidden)
    g = np.asarray(apply(c, jnp.array([[0.0], [0.35], [0.39], [1.0]])))
    np.testing.assert_allclose(g, [0, 0, 1, 1], atol=1e-4)
    assert hidden_neurons(c) == (2 if hidden.name == "relu" else 1)


def test_sigmoid_step_sits_at_minus_b_over_w():
    layer = step(0.25, w=400.0).params[0]
    assert float(-layer["b"][0] / layer["w"][0, 0]) == pytest.approx(0.25)
    assert float(layer["w"][0, 0]) == 400.0


def test_step_needs_distinct_limits():
    with pytest.raises(ValueError, match="distinct limits"):
        step(0.5, hidden=activations.LINEAR)
    with pytest.raises(ValueError, match="steepness w must be positive"):
        steps([[1.0]], [0.5], 0.0, activations.SIGMOID)


def test_steps_limits_match_the_activations():
    for name, (lo, hi) in LIMITS.items():
        fn = WIGGLY.fn if name == "wiggly" else activations.get(name).fn
        np.testing.assert_allclose(fn(jnp.array([-60.0, 60.0])), [lo, hi], atol=1e-6)


@pytest.mark.parametrize("hidden", STEP_ACTIVATIONS, ids=lambda a: a.name)
def test_bump_has_height_h_between_its_steps(hidden):
    c = bumps([0.2, 0.6], [0.5, 0.9], [0.7, -1.3], hidden=hidden, output=activations.LINEAR)
    z = np.asarray(weighted_output(c, jnp.array([[0.1], [0.3], [0.45], [0.55], [0.7], [0.95]])))
    np.testing.assert_allclose(z, [0, 0.7, 0.7, 0, -1.3, 0], atol=1e-3)
    assert c.net.sizes == (1, 4 * (2 if hidden.name == "relu" else 1), 1)


def test_bump_output_weights_are_plus_and_minus_h():
    c = bumps([0.2], [0.5], [0.7])
    np.testing.assert_allclose(c.params[1]["w"], [[0.7, -0.7]], rtol=1e-6)


def test_bumps_reject_bad_input():
    with pytest.raises(ValueError, match="lo < hi"):
        bumps([0.5], [0.2], [1.0])
    with pytest.raises(ValueError, match="equal length"):
        bumps([0.1, 0.5], [0.2, 0.6], [1.0])


@pytest.mark.parametrize("hidden", STEP_ACTIVATIONS, ids=lambda a: a.name)
def test_tower_is_h_inside_and_zero_on_the_arms(hidden):
    c = towers([0.2, 0.5], [0.3, 0.8], [[0.9]], hidden=hidden, output=activations.LINEAR)
    pts = jnp.array([[0.35, 0.55], [0.35, 0.1], [0.9, 0.55], [0.9, 0.1], [0.21, 0.79]])
    np.testing.assert_allclose(weighted_output(c, pts), [0.9, 0, 0, 0, 0.9], atol=1e-3)


def test_tower_neuron_has_the_books_bias():
    c = towers([0.2, 0.5], [0.3, 0.8], [[0.9]], tower_w=80.0)
    second = c.params[1]
    np.testing.assert_allclose(second["b"], [-1.5 * 80.0])  # b ≈ −3h/2
    # +h, −h on each bump's steps
    np.testing.assert_allclose(second["w"], [[80.0, -80.0, 80.0, -80.0]])


def test_towers_reject_bad_input():
    with pytest.raises(ValueError, match=r"heights must have shape .*\(2, 1\)"):
        towers([0, 0.5, 1], [0, 1], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="strictly increasing"):
        towers([0.5, 0.2], [0, 1], [[1.0]])


def test_parallel_adds_weighted_outputs():
    a = bumps([0.1], [0.4], [1.0], output=activations.LINEAR)
    b = bumps([0.3, 0.6], [0.5, 0.9], [2.0, -0.5], w=50.0, output=activations.LINEAR)
    x = jnp.linspace(0, 1, 101)[:, None]
    both = parallel([a, b])
    assert both.net.sizes == (1, 6, 1)
    np.testing.assert_allclose(weighted_output(both, x), weighted_output(a, x)
                               + weighted_output(b, x), atol=1e-5)
    t1, t2 = towers([0, 0.5], [0, 0.5], [[1.0]]), towers([0.2, 1.0], [0.4, 0.9], [[-2.0]])
    pts = jax.random.uniform(jax.random.key(0), (50, 2))
    np.testing.assert_allclose(weighted_output(parallel([t1, t2]), pts),
                               weighted_output(t1, pts) + weighted_output(t2, pts), atol=1e-5)


def test_parallel_rejects_mismatched_constructions():
    with pytest.raises(ValueError, match="same inputs, depth and activations"):
        parallel([bumps([0.1], [0.4], [1.0]), towers([0, 0.5], [0, 0.5], [[1.0]])])


def test_a_construction_is_an_ordinary_network():
    c = towers([0.2, 0.5, 0.9], [0.3, 0.8], [[0.9], [-0.4]])
    network.check_params(c.params, c.net)
    pts = jax.random.uniform(jax.random.key(1), (20, 2))
    np.testing.assert_allclose(network.feedforward(c.params, pts, c.net)[:, 0], apply(c, pts),
                               rtol=1e-5)


def test_wiggly_prime_is_its_derivative():
    z = jnp.linspace(-6.0, 6.0, 241, dtype=jnp.float64)
    np.testing.assert_allclose(wiggly_prime(z), jax.vmap(jax.grad(wiggly))(z), rtol=1e-10,
                               atol=1e-12)
    check_grads(wiggly, (jnp.array([-2.3, -0.4, 0.7, 3.1], jnp.float64),), order=1, modes=["rev"])
    # really wiggles
    assert float(wiggly(jnp.array(0.3))) != pytest.approx(float(jax.nn.sigmoid(0.3)))
