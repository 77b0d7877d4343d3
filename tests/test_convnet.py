"""nnjax.convnet: network3's cost (log-likelihood + L2 scalings), evaluation, and learning MNIST."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import convnet, optim, train

F64 = jnp.float64
ARCH = convnet.network3_arch((3,), (8,), "sigmoid", n_out=4)


def small_net(seed=0):
    net = convnet.build(ARCH, init="default")
    _, params = net.init(jax.random.key(seed), (8, 8, 1))
    params = jax.tree_util.tree_map(
        lambda p: p.astype(F64) + 0.1 * jax.random.normal(jax.random.key(seed + 1), p.shape, F64), params)
    return net, params


def test_log_likelihood_is_minus_mean_log_softmax_of_the_label():
    z = jax.random.normal(jax.random.key(0), (5, 4), F64)
    y = jnp.array([0, 3, 1, 1, 2])
    expected = -np.mean(np.log(np.asarray(jax.nn.softmax(z)))[np.arange(5), np.asarray(y)])
    np.testing.assert_allclose(convnet.log_likelihood(z, y), expected, rtol=1e-12)


@pytest.mark.parametrize("scaling, decay", [("network3", 0.5 * 10 / 1000), ("network2", 0.5 / 1000)])
def test_l2_adds_lambda_s_w_to_weight_gradients_only(scaling, decay):
    """network3: ∂/∂w of (λ/2)(m/n)Σw² is λ(m/n)w, so a step decays w by ηλm/n; network2: ηλ/n."""
    net, params = small_net()
    x, y = jax.random.uniform(jax.random.key(2), (10, 8, 8, 1), F64), jnp.arange(10) % 4
    plain = jax.jit(jax.grad(convnet.make_loss(net.apply)))(params, x, y)
    with_l2 = jax.jit(convnet.make_grad(net.apply, lmbda=0.5, n=1000, batch_size=10, l2_scaling=scaling))(params, x, y)
    for p, g0, g1 in zip(params, plain, with_l2):
        if p:
            np.testing.assert_allclose(g1["w"] - g0["w"], decay * p["w"], rtol=1e-9, atol=1e-15)
            np.testing.assert_array_equal(g1["b"], g0["b"])
    assert convnet.l2_factor(0.5, 1000, 10, scaling) == pytest.approx(decay / 2)


def test_l2_sums_squares_of_weights_not_biases():
    params = ({"w": jnp.ones((2, 3)), "b": jnp.ones(2)}, (), {"w": 2 * jnp.ones((1, 2)), "b": jnp.ones(1)})
    assert float(convnet.l2(params)) == 6 + 8


def test_evaluate_counts_correct_answers_in_chunks():
    net, params = small_net()
    x, y = jax.random.uniform(jax.random.key(3), (7, 8, 8, 1), F64), jnp.array([0, 1, 2, 3, 0, 1, 2])
    z = net.apply(params, x)
    correct, cost = convnet.evaluate(params, x, y, apply=net.apply, chunk=3)  # 7 = 3 + 3 + 1
    assert int(correct) == int(jnp.sum(jnp.argmax(z, -1) == y))
    np.testing.assert_allclose(cost, convnet.log_likelihood(z, y), rtol=1e-12)
    np.testing.assert_allclose(convnet.probabilities(net.apply, params, x, chunk=3), jax.nn.softmax(z), rtol=1e-12)


def test_bad_l2_options_fail_clearly():
    with pytest.raises(ValueError, match="unknown L2 scaling 'network1'"):
        convnet.l2_factor(0.1, 100, 10, "network1")
    with pytest.raises(ValueError, match="needs the training-set size n"):
        convnet.make_loss(lambda p, x, k=None: x, lmbda=0.1)


@pytest.mark.slow
@pytest.mark.mnist
def test_a_small_conv_net_learns_mnist(mnist):
    """conv8 → softmax, network3's settings, two fixed-order epochs on 2,000 images: well above chance."""
    net = convnet.build(convnet.network3_arch((8,), (), "relu"))
    _, params = net.init(jax.random.key(0), (28, 28, 1))
    x = jnp.asarray(mnist.training.x[:2000]).reshape(-1, 28, 28, 1)
    y = jnp.asarray(mnist.training.y[:2000])
    opt = optim.sgd(0.1)
    epoch = jax.jit(train.make_epoch(convnet.make_grad(net.apply, lmbda=0.1, n=2000, batch_size=10), opt, 10,
                                     shuffle=False))
    state = (params, opt.init(params))
    for e in range(2):
        state = epoch(*state, jax.random.key(e), x, y)
    correct, _ = convnet.evaluate(state[0], jnp.asarray(mnist.validation.x[:1000]).reshape(-1, 28, 28, 1),
                                  jnp.asarray(mnist.validation.y[:1000]), apply=net.apply)
    assert int(correct) > 850
