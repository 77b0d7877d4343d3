"""Each activation's derivative and each cost's output error δ^L, against jax.grad."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import activations, costs

ELEMENTWISE = [activations.SIGMOID, activations.TANH, activations.RELU, activations.LINEAR]
Z = jnp.linspace(-6.0, 6.0, 121, dtype=jnp.float64) + 0.013  # avoids ReLU's kink at exactly 0


@pytest.mark.parametrize("act", ELEMENTWISE, ids=lambda a: a.name)
def test_prime_is_the_derivative(act):
    np.testing.assert_allclose(act.prime(Z), jax.vmap(jax.grad(act.fn))(Z), rtol=1e-12, atol=1e-15)


def test_sigmoid_values_and_limits():
    assert activations.sigmoid(jnp.array(0.0)) == 0.5
    np.testing.assert_allclose(activations.sigmoid(jnp.array([-800.0, 800.0])), [0.0, 1.0])
    np.testing.assert_allclose(activations.tanh(Z), 2 * activations.sigmoid(2 * Z) - 1, rtol=1e-12)


def test_softmax_is_a_distribution_and_has_no_elementwise_prime():
    a = activations.softmax(jnp.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(jnp.sum(a), 1.0)
    assert jnp.all(jnp.diff(a) > 0)
    with pytest.raises(TypeError, match="log-likelihood"):
        activations.SOFTMAX.prime(jnp.zeros(3))


PAIRS = [(costs.QUADRATIC, a) for a in ELEMENTWISE] + [
    (costs.CROSS_ENTROPY, activations.SIGMOID),
    (costs.LOG_LIKELIHOOD, activations.SOFTMAX),
]


@pytest.mark.parametrize("cost,act", PAIRS, ids=lambda v: v.name)
def test_delta_is_dC_dz(cost, act):
    """BP1: the hand-derived δ^L equals ∂C_x/∂z^L computed by jax.grad."""
    z = jax.random.normal(jax.random.key(0), (7,), jnp.float64) * 3
    y = jax.nn.one_hot(4, 7, dtype=jnp.float64)
    by_autodiff = jax.grad(lambda z: cost.fn(z, act.fn(z), y))(z)
    np.testing.assert_allclose(cost.delta(z, act.fn(z), y, act), by_autodiff, rtol=1e-10,
                               atol=1e-14)


def test_cross_entropy_equals_its_definition_and_stays_finite_when_saturated():
    z = jnp.array([-3.0, 0.5, 2.0], jnp.float64)
    y = jnp.array([0.0, 1.0, 0.0], jnp.float64)
    a = activations.sigmoid(z)
    definition = -jnp.sum(y * jnp.log(a) + (1 - y) * jnp.log(1 - a))
    np.testing.assert_allclose(costs.CROSS_ENTROPY.fn(z, a, y), definition, rtol=1e-12)
    z_sat = jnp.array([-800.0, 800.0], jnp.float64)  # σ(z) is exactly 0 and 1 here
    c = costs.CROSS_ENTROPY.fn(z_sat, activations.sigmoid(z_sat), jnp.array([1.0, 0.0]))
    assert jnp.isfinite(c) and c == pytest.approx(1600.0)


def test_cross_entropy_delta_has_no_sigma_prime_factor():
    """Ch3's point: for a saturated wrong output neuron, quadratic δ vanishes, CE's does not."""
    z, y = jnp.array([10.0]), jnp.array([0.0])
    a = activations.sigmoid(z)
    quad = costs.QUADRATIC.delta(z, a, y, activations.SIGMOID)
    ce = costs.CROSS_ENTROPY.delta(z, a, y, activations.SIGMOID)
    assert abs(float(quad[0])) < 1e-4 and float(ce[0]) > 0.99


def test_log_likelihood_is_minus_log_of_the_right_output():
    z = jnp.array([0.1, 2.0, -1.0], jnp.float64)
    y = jax.nn.one_hot(1, 3, dtype=jnp.float64)
    a = activations.softmax(z)
    np.testing.assert_allclose(costs.LOG_LIKELIHOOD.fn(z, a, y), -jnp.log(a[1]), rtol=1e-12)


@pytest.mark.parametrize("module,name", [(activations, "swish"), (costs, "hinge")])
def test_unknown_names_are_refused(module, name):
    with pytest.raises(ValueError, match="choose one of"):
        module.get(name)
