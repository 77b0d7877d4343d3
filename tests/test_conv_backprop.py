"""Hand-derived conv and max-pool backprop (nnjax.conv_backprop) against jax.grad and finite
differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from nnjax import conv, conv_backprop, convnet, layers

F64 = jnp.float64


def normal(seed, shape):
    return jax.random.normal(jax.random.key(seed), shape, F64)


def directional_fd(f, args, direction, eps=1e-6):
    """(f(args + ε·v) − f(args − ε·v)) / 2ε: the finite-difference slope of f along v."""
    plus = jax.tree_util.tree_map(lambda a, v: a + eps * v, args, direction)
    minus = jax.tree_util.tree_map(lambda a, v: a - eps * v, args, direction)
    return (f(*plus) - f(*minus)) / (2 * eps)


def dot(tree_a, tree_b):
    return sum(jnp.vdot(a, b) for a, b in zip(jax.tree_util.tree_leaves(tree_a),
                                              jax.tree_util.tree_leaves(tree_b)))


@pytest.mark.parametrize("impl, shape", [("im2col", (2, 8, 8, 1, 3, 5)), ("lax", (3, 7, 6, 2, 4,
                                                                                  3))])
def test_conv_backward_three_ways(impl, shape):
    m, h, w, c, f, k = shape
    a, wt, b = normal(0, (m, h, w, c)), normal(1, (k, k, c, f)), normal(2, (f,))
    delta = normal(3, (m, h - k + 1, w - k + 1, f))  # ∂C/∂z from the layer above

    def cost(a, wt, b):  # C = Σ δ ⊙ z, so ∂C/∂z = δ exactly
        return jnp.sum(delta * layers.convolve({"w": wt, "b": b}, a, impl))

    nabla_w, nabla_b, delta_a = jax.jit(conv_backprop.conv_backward, static_argnums=3)(a, wt, delta,
                                                                                       impl)
    ga, gw, gb = jax.jit(jax.grad(cost, argnums=(0, 1, 2)))(a, wt, b)
    np.testing.assert_allclose(nabla_w, gw, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(nabla_b, gb, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(delta_a, ga, rtol=1e-10, atol=1e-10)
    # jax.grad against finite differences
    check_grads(jax.jit(cost), (a, wt, b), order=1, modes=["rev"])
    v = (normal(4, a.shape), normal(5, wt.shape), normal(6, b.shape))
    np.testing.assert_allclose(dot((delta_a, nabla_w, nabla_b), v),
                               directional_fd(cost, (a, wt, b), v), rtol=1e-6)


def test_max_pool_backward_three_ways():
    z, delta = normal(0, (2, 6, 4, 3)), normal(1, (2, 3, 2, 3))

    def cost(z):
        return jnp.sum(delta * conv.max_pool(z))

    hand = conv_backprop.max_pool_backward(z, delta)
    np.testing.assert_allclose(hand, jax.grad(cost)(z), rtol=1e-12)
    check_grads(cost, (z,), order=1, modes=["rev"])
    v = normal(2, z.shape)
    np.testing.assert_allclose(jnp.vdot(hand, v), directional_fd(cost, (z,), (v,)), rtol=1e-6)
    assert int(jnp.sum(hand != 0)) == delta.size  # one unit per region receives its δ


def test_max_pool_backward_with_ties_routes_delta_to_the_first_maximum():
    z = jnp.zeros((1, 2, 2, 1), F64).at[0, 1, 1, 0].set(-1.0)  # three tied maxima
    hand = conv_backprop.max_pool_backward(z, jnp.full((1, 1, 1, 1), 3.0, F64))
    np.testing.assert_array_equal(hand[0, :, :, 0], [[3.0, 0.0], [0.0, 0.0]])
    by_jax = jax.grad(lambda z: 3.0 * jnp.sum(conv.max_pool(z)))(z)  # jax splits δ among ties
    assert float(jnp.sum(hand)) == pytest.approx(float(jnp.sum(by_jax)))


ARCHS = [
    convnet.network3_arch((3, 4), (6,), "sigmoid", n_out=5),
    convnet.network3_arch((3,), (), "tanh", n_out=5),
    convnet.network3_arch((2, 3), (6, 4), "relu", n_out=5),
    convnet.network3_arch((), (7,), "sigmoid", n_out=5),
]


@pytest.mark.parametrize("arch", ARCHS, ids=["sigmoid-2conv", "tanh-conv-softmax", "relu-2conv-2fc",
                                             "fc"])
def test_network_backprop_three_ways(arch):
    net = convnet.build(arch, init="default")
    _, params = net.init(jax.random.key(0), (16, 16, 1))
    # non-zero softmax
    params = jax.tree_util.tree_map(lambda p: p.astype(F64) + 0.3 * normal(7, p.shape), params)
    x, y = jax.random.uniform(jax.random.key(1), (4, 16, 16, 1), F64), jnp.array([0, 1, 4, 2])
    loss = jax.jit(convnet.make_loss(net.apply))  # compiled: eager conv nets are slow
    hand = jax.jit(conv_backprop.make_grad(arch))(params, x, y)
    auto = jax.jit(jax.grad(loss))(params, x, y)
    jax.tree_util.tree_map(lambda h, a: np.testing.assert_allclose(h, a, rtol=1e-9, atol=1e-12),
                           hand, auto)
    v = jax.tree_util.tree_map(lambda p: normal(8, p.shape), params)
    np.testing.assert_allclose(dot(hand, v), directional_fd(lambda p: loss(p, x,
        y), (params,), (v,)), rtol=1e-6)


@pytest.mark.parametrize("mode", ["network3", "inverted"])
def test_hand_backprop_through_dropout_equals_jax_grad_with_the_same_key(mode):
    arch = convnet.network3_arch((2,), (5,), "relu", dropout=0.5, n_out=3)
    net = convnet.build(arch, dropout_mode=mode)
    _, params = net.init(jax.random.key(0), (8, 8, 1))
    params = jax.tree_util.tree_map(lambda p: p.astype(F64) + 0.3 * normal(7, p.shape), params)
    x, y, key = jax.random.uniform(jax.random.key(1), (4, 8, 8, 1),
                                   F64), jnp.array([0, 1, 2, 1]), jax.random.key(5)
    hand = jax.jit(conv_backprop.make_grad(arch, dropout_mode=mode))(params, x, y, key)
    auto = jax.jit(convnet.make_grad(net.apply))(params, x, y, key)
    jax.tree_util.tree_map(lambda h, a: np.testing.assert_allclose(h, a, rtol=1e-9, atol=1e-12),
                           hand, auto)
