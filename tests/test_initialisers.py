"""Chapter 3's initialisers: large N(0,1), default N(0,1/n_in), network3's N(0,1/n_out), zeros."""

import jax
import numpy as np
import pytest

from nnjax import init, network


@pytest.mark.parametrize("name, w_std", [("large", lambda n_in, n_out: 1.0),
                                          ("default", lambda n_in, n_out: n_in**-0.5),
                                          ("network3", lambda n_in, n_out: n_out**-0.5)])
def test_weight_and_bias_spreads(name, w_std):
    n_in, n_out = 400, 300
    layer = init.get(name)(jax.random.key(0), n_in, n_out)
    assert layer["w"].shape == (n_out, n_in) and layer["b"].shape == (n_out,)
    np.testing.assert_allclose(np.std(layer["w"]), w_std(n_in, n_out), rtol=0.01)  # 120,000 draws
    assert abs(float(np.mean(layer["w"]))) < 0.01 * w_std(n_in, n_out)
    np.testing.assert_allclose(np.std(layer["b"]), 1.0, rtol=0.1)  # biases N(0, 1) in all three


def test_default_init_keeps_z_near_unit_spread():
    """ch3's argument: with W ~ N(0, 1/n_in) and half the 1,000 inputs on, z = w·x + b has
    std ≈ √(3/2) ≈ 1.22 (book), against ≈ 22.4 with N(0, 1) weights."""
    x = np.zeros(1000, np.float32)
    x[:500] = 1.0
    zs = {}
    for name in ("default", "large"):
        layer = init.get(name)(jax.random.key(1), 1000, 2000)
        zs[name] = np.std(np.asarray(layer["w"]) @ x + np.asarray(layer["b"]))
    np.testing.assert_allclose(zs["default"], np.sqrt(1.5), rtol=0.05)
    np.testing.assert_allclose(zs["large"], np.sqrt(501), rtol=0.05)


def test_zeros_and_parameter_count():
    params = init.init_params(jax.random.key(2), (784, 30, 10), "zeros")
    assert all(float(np.abs(leaf).sum()) == 0 for leaf in jax.tree.leaves(params))
    assert network.num_params(params) == 23_860


def test_unknown_initialiser_raises():
    with pytest.raises(ValueError, match="unknown initialiser 'xavier'"):
        init.init_params(jax.random.key(0), (3, 2), "xavier")
