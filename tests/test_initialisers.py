"""Chapter 3's reason for the default initialiser (spreads and shapes: tests/test_network.py)."""

import jax
import numpy as np

from nnjax import init


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
