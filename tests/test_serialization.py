"""Saving and loading trained networks (msgpack + JSON, no pickle)."""

import json

import chex
import jax
import jax.numpy as jnp
import pytest

from nnjax import activations, costs, init, network, serialization
from nnjax.activations import Activation
from nnjax.network import Network

NETS = [
    Network((5, 4, 3), activations.SIGMOID, activations.SIGMOID, costs.CROSS_ENTROPY),
    Network((5, 4, 4, 3), activations.TANH, activations.softmax_at(2.0),
            costs.log_likelihood_at(2.0)),
    Network((5, 3), activations.RELU, activations.LINEAR, costs.QUADRATIC),
]


@pytest.mark.parametrize("net", NETS, ids=lambda n: f"{n.activation.name}-{n.output.name}")
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_round_trip_is_exact(tmp_path, net, dtype):
    params = init.init_params(jax.random.key(0), net.sizes, "default", dtype=dtype)
    meta = {"eta": 0.5, "lmbda": 5.0, "epochs": [1, 2]}
    serialization.save(tmp_path / "net", params, net, meta)
    loaded, net2, meta2 = serialization.load(tmp_path / "net")
    assert net2 == net and meta2 == meta
    chex.assert_trees_all_equal(loaded, params)
    assert loaded[0]["w"].dtype == dtype
    x = jax.random.uniform(jax.random.key(1), (7, net.sizes[0]), dtype)
    chex.assert_trees_all_equal(network.feedforward(loaded, x, net2),
                                network.feedforward(params, x, net))


def test_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a saved network"):
        serialization.load(tmp_path / "nothing")


def test_wrong_sizes_in_description_raise(tmp_path):
    net = NETS[0]
    serialization.save(tmp_path, init.init_params(jax.random.key(0), net.sizes), net)
    desc = json.loads((tmp_path / "network.json").read_text())
    desc["sizes"] = [5, 6, 3]
    (tmp_path / "network.json").write_text(json.dumps(desc))
    with pytest.raises(ValueError, match="expected w of shape"):
        serialization.load(tmp_path)
    desc["sizes"] = [5, 6, 6, 3]
    (tmp_path / "network.json").write_text(json.dumps(desc))
    with pytest.raises(ValueError, match="does not hold parameters for sizes"):
        serialization.load(tmp_path)
    desc["format"] = "pickle"
    (tmp_path / "network.json").write_text(json.dumps(desc))
    with pytest.raises(ValueError, match="expected format 'nnjax-network'"):
        serialization.load(tmp_path)


def test_custom_activation_cannot_be_saved(tmp_path):
    swish = Activation("swish", lambda z: z * jax.nn.sigmoid(z), lambda z: z)
    net = Network((3, 2, 2), swish)
    with pytest.raises(ValueError, match="cannot save activation 'swish'"):
        serialization.save(tmp_path, init.init_params(jax.random.key(0), net.sizes), net)
