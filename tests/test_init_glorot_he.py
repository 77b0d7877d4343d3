"""The two initialisers added for chapter 5's speed study beyond the book: glorot and he."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import init


@pytest.mark.parametrize("name, variance", [("glorot", lambda n_in, n_out: 2 / (n_in + n_out)),
                                            ("he", lambda n_in, n_out: 2 / n_in)])
def test_weight_spread_and_zero_biases(name, variance):
    layer = init.get(name)(jax.random.key(0), 400, 300)
    assert layer["w"].shape == (300, 400) and layer["w"].dtype == jnp.float32
    assert float(jnp.var(layer["w"])) == pytest.approx(variance(400, 300), rel=0.02)
    np.testing.assert_array_equal(layer["b"], 0.0)


def test_they_build_whole_networks():
    params = init.init_params(jax.random.key(1), (784, 30, 30, 10), "he")
    assert [p["w"].shape for p in params] == [(30, 784), (30, 30), (10, 30)]
