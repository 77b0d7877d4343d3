"""Chapter 3's costs and activations: every hand-derived derivative three ways.

hand-derived (σ′, δ^L, BP1–BP4) = jax.grad = finite differences (jax.test_util.check_grads),
in float64, for each activation, each (output, cost) pair including the softmax with
temperature, and the chapter-3 networks that tests/test_backprop.py's grid leaves out.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from nnjax import activations, autodiff, backprop, costs, init
from nnjax.network import Network, cost

A = activations
ELEMENTWISE = [A.SIGMOID, A.TANH, A.RELU, A.LINEAR]


def z_values(n=7, seed=0):
    z = 3.0 * jax.random.normal(jax.random.key(seed), (n,), jnp.float64)
    return jnp.where(jnp.abs(z) < 1e-3, 0.5, z)  # keep ReLU's kink out of finite differences


@pytest.mark.parametrize("act", ELEMENTWISE, ids=lambda a: a.name)
def test_activation_prime_three_ways(act):
    z = z_values()
    auto = jax.vmap(jax.grad(act.fn))(z)
    np.testing.assert_allclose(act.prime(z), auto, rtol=1e-12, atol=1e-12)
    check_grads(lambda v: jnp.sum(act.fn(v)), (z,), order=1, modes=["rev"], eps=1e-6)


# (output activation, cost) pairs of ch1 and ch3, including the temperature softmax
OUTPUTS = [
    (A.SIGMOID, costs.QUADRATIC),
    (A.SIGMOID, costs.CROSS_ENTROPY),
    (A.LINEAR, costs.QUADRATIC),
    (A.SOFTMAX, costs.LOG_LIKELIHOOD),
    (A.softmax_at(2.5), costs.log_likelihood_at(2.5)),
    (A.softmax_at(0.5), costs.log_likelihood_at(0.5)),
]
OUT_IDS = [f"{a.name}-{c.name}" for a, c in OUTPUTS]


@pytest.mark.parametrize("output, cost_", OUTPUTS, ids=OUT_IDS)
def test_output_error_three_ways(output, cost_):
    """BP1: the cost's hand-written δ^L equals ∂C_x/∂z^L by jax.grad and by finite differences."""
    z = z_values(10, seed=1)
    y = jax.nn.one_hot(3, 10, dtype=jnp.float64)
    def c_of_z(v):
        return cost_.fn(v, output.fn(v), y)

    np.testing.assert_allclose(cost_.delta(z, output.fn(z), y, output), jax.grad(c_of_z)(z),
                               rtol=1e-10, atol=1e-12)
    check_grads(c_of_z, (z,), order=1, modes=["rev"], eps=1e-6)


NETWORKS = [  # test_backprop.py covers sigmoid/sigmoid, sigmoid/softmax, tanh/linear, relu/softmax
    (A.SIGMOID, A.softmax_at(2.5), costs.log_likelihood_at(2.5)),
    (A.TANH, A.SIGMOID, costs.CROSS_ENTROPY),
    (A.RELU, A.SIGMOID, costs.CROSS_ENTROPY),
    (A.LINEAR, A.LINEAR, costs.QUADRATIC),
]


@pytest.mark.parametrize("hidden, output, cost_", NETWORKS,
                         ids=[f"{h.name}-{o.name}-{c.name}" for h, o, c in NETWORKS])
@pytest.mark.parametrize("form", ["matrix", "example"])
def test_backprop_three_ways(hidden, output, cost_, form):
    """BP1–BP4 by hand = jax.grad of the mean cost = finite differences, on [6, 5, 4, 3]."""
    net = Network((6, 5, 4, 3), hidden, output, cost_)
    params = init.init_params(jax.random.key(2), net.sizes, "default", dtype=jnp.float64)
    x = jax.random.uniform(jax.random.key(3), (4, 6), jnp.float64)
    y = jnp.array([0, 2, 1, 2])
    hand = backprop.make_grad(net, form)(params, x, y)
    auto = autodiff.make_grad(net)(params, x, y)
    jax.tree.map(lambda h, a: np.testing.assert_allclose(h, a, rtol=1e-9, atol=1e-12), hand, auto)
    check_grads(lambda p: cost(p, x, y, net), (params,), order=1, modes=["rev"], eps=1e-6)


def test_softmax_temperature_limits():
    z = jnp.array([1.0, 3.0, 2.0])
    # hot: uniform
    np.testing.assert_allclose(A.softmax_at(1e6).fn(z), np.full(3, 1 / 3), atol=1e-6)
    np.testing.assert_allclose(A.softmax_at(1e-3).fn(z), [0.0, 1.0, 0.0], atol=1e-6)  # cold: argmax
    np.testing.assert_allclose(A.softmax_at(2.0).fn(z), jax.nn.softmax(z / 2.0))
    assert A.softmax_at(2.0) is A.get("softmax(c=2.0)") and A.softmax_at(1.0) is A.SOFTMAX
    assert costs.get("log_likelihood(c=2.0)") is costs.log_likelihood_at(2.0)


def test_mismatched_softmax_and_cost_raise_clearly():
    with pytest.raises(ValueError, match=r"defined for a softmax\(c=2.0\) output"):
        Network((4, 3), output=A.SOFTMAX, cost=costs.log_likelihood_at(2.0))
    with pytest.raises(ValueError, match="pairs with the log_likelihood cost"):
        Network((4, 3), output=A.softmax_at(2.0), cost=costs.QUADRATIC)
    with pytest.raises(ValueError, match="only be the output layer"):
        Network((4, 3, 2), activation=A.softmax_at(2.0), output=A.LINEAR)


@pytest.mark.parametrize("bad", [0.0, -1.0, "hot"])
def test_bad_temperature_raises(bad):
    with pytest.raises(ValueError, match="temperature c must be a positive number"):
        A.softmax_at(bad)


@pytest.mark.parametrize("lookup, name", [(A.get, "softmax(c=hot)"), (costs.get,
                                                                      "log_likelihood(c=)")])
def test_bad_temperature_names_raise_clearly(lookup, name):
    with pytest.raises(ValueError, match="bad temperature|unknown"):
        lookup(name)
