"""Dropout (ch3; network3.py's form and inverted dropout): masks, scaling, gradients, training."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fitting  # tests/fitting.py: train.fit with the usual pieces
from nnjax import activations, autodiff, costs, dropout, init, network, optim
from nnjax.network import Network

NET = Network((6, 5, 4, 3), activations.SIGMOID, activations.SOFTMAX, costs.LOG_LIKELIHOOD)
# a key used twice fails (clone where intended)
pytestmark = pytest.mark.usefixtures("check_key_reuse")


def test_drop_zeroes_a_fraction_p_and_keeps_the_rest_unchanged():
    a = jnp.full((200, 500), 2.0)
    out = dropout.drop(jax.random.key(0), a, 0.3)
    zeroed = float(jnp.mean(out == 0))
    assert abs(zeroed - 0.3) < 0.01  # 100,000 draws: std ≈ 0.0015
    assert set(np.unique(np.asarray(out)).tolist()) == {0.0, 2.0}


def test_inverted_dropout_scales_kept_units_and_preserves_the_mean():
    a = jnp.full((200, 500), 2.0)
    out = dropout.drop_inverted(jax.random.key(1), a, 0.5)
    assert set(np.unique(np.asarray(out)).tolist()) == {0.0, 4.0}
    assert abs(float(jnp.mean(out)) - 2.0) < 0.02


def test_masks_follow_the_key():
    a = jnp.ones((50,))
    k1, k2 = jax.random.key(3), jax.random.key(4)
    same = [dropout.drop(jax.random.clone(k1), a, 0.5) for _ in range(2)]
    np.testing.assert_array_equal(*same)
    assert not np.array_equal(dropout.drop(k1, a, 0.5), dropout.drop(k2, a, 0.5))


def test_network3_test_time_scaling_matches_the_expected_training_input():
    """E[w (mask ⊙ a)] = (1 − p) w a: what network3.py's test-time scaled weights compute."""
    w = jax.random.normal(jax.random.key(5), (4, 6))
    a = jax.random.uniform(jax.random.key(6), (6,))
    keys = jax.random.split(jax.random.key(7), 20000)
    expected = jnp.mean(jax.vmap(lambda k: w @ dropout.drop(k, a, 0.4))(keys), axis=0)
    np.testing.assert_allclose(expected, dropout.scale_weights(w, 0.4) @ a, atol=0.03)


def test_inference_params_scale_only_layers_whose_inputs_were_dropped():
    params = init.init_params(jax.random.key(8), NET.sizes, "default")
    scaled = dropout.inference_params(params, 0.25)
    np.testing.assert_array_equal(scaled[0]["w"], params[0]["w"])  # input pixels are never dropped
    for l in (1, 2):
        np.testing.assert_allclose(scaled[l]["w"], 0.75 * params[l]["w"])
        np.testing.assert_array_equal(scaled[l]["b"], params[l]["b"])
    assert dropout.inference_params(params, 0.25, inverted=True) is params


def test_p_zero_is_the_plain_network():
    params = init.init_params(jax.random.key(9), NET.sizes, "default", dtype=jnp.float64)
    x = jax.random.uniform(jax.random.key(10), (5, 6), jnp.float64)
    y = jnp.array([0, 1, 2, 1, 0])
    np.testing.assert_allclose(dropout.cost(params, x, y, NET, jax.random.key(0), 0.0),
                               network.cost(params, x, y, NET), rtol=1e-12)
    g = jax.jit(dropout.make_grad(NET, 0.0))(params, x, y, jax.random.key(0))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10),
                 g, jax.jit(autodiff.make_grad(NET))(params, x, y))


def test_dropout_gradient_is_that_of_the_thinned_network():
    """With one key, the dropout gradient equals the plain gradient of the network whose
    dropped hidden units are removed, i.e. whose weights from them are zeroed."""
    params = init.init_params(jax.random.key(11), NET.sizes, "default", dtype=jnp.float64)
    x = jax.random.uniform(jax.random.key(12), (1, 6), jnp.float64)
    y = jnp.array([2])
    key, p = jax.random.key(13), 0.5
    # the masks dropout.cost draws from key
    keys = jax.random.split(jax.random.clone(key), len(params))
    masks = [None] + [dropout.keep_mask(keys[l], (1, NET.sizes[l]), p)[0] for l in (1, 2)]
    thinned = tuple(layer if l == 0 else {**layer, "w": layer["w"] * masks[l][None, :]}
                    for l, layer in enumerate(params))
    np.testing.assert_allclose(dropout.cost(params, x, y, NET, jax.random.clone(key), p),
                               network.cost(thinned, x, y, NET), rtol=1e-12)
    g_drop = jax.jit(dropout.make_grad(NET, p))(params, x, y, key)
    g_thin = jax.jit(autodiff.make_grad(NET))(thinned, x, y)
    for l in (1, 2):  # weights from dropped units get no gradient
        np.testing.assert_allclose(g_drop[l]["w"], g_thin[l]["w"] * masks[l][None, :], rtol=1e-10,
                                   atol=1e-14)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, "half", True])
def test_bad_p_raises_clearly(p):
    with pytest.raises(ValueError, match=r"dropout probability p must be a number in \[0, 1\)"):
        dropout.drop(jax.random.key(0), jnp.ones(3), p)


@pytest.mark.slow
@pytest.mark.parametrize("inverted", [False, True])
def test_training_with_dropout_learns(inverted):
    """A separable toy problem: with p = 0.5 on 20 hidden units the net still learns it."""
    net = Network((2, 20, 2), activations.SIGMOID, activations.SOFTMAX, costs.LOG_LIKELIHOOD)
    x = jax.random.uniform(jax.random.key(14), (400, 2), minval=-1, maxval=1)
    y = (x[:, 0] + x[:, 1] > 0).astype(jnp.int32)
    params = init.init_params(jax.random.key(15), net.sizes, "default")
    params, _ = fitting.fit(params, dropout.make_grad(net, 0.5, inverted), optim.sgd(1.0), (x, y),
                          epochs=30, batch_size=10, key=jax.random.key(16), stochastic=True)
    correct, _ = network.evaluate(dropout.inference_params(params, 0.5, inverted), x, y, net)
    assert int(correct) >= 380
