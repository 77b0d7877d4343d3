"""nnjax.convnet: network3's cost (log-likelihood; L2 by nnjax.optim), evaluation, and learning
MNIST."""

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
        lambda p: p.astype(F64) + 0.1 * jax.random.normal(jax.random.key(seed + 1), p.shape, F64),
        params)
    return net, params


def test_log_likelihood_is_minus_mean_log_softmax_of_the_label():
    z = jax.random.normal(jax.random.key(0), (5, 4), F64)
    y = jnp.array([0, 3, 1, 1, 2])
    expected = -np.mean(np.log(np.asarray(jax.nn.softmax(z)))[np.arange(5), np.asarray(y)])
    np.testing.assert_allclose(convnet.log_likelihood(z, y), expected, rtol=1e-12)


@pytest.mark.parametrize("scaling, decay", [("network3", 0.5 * 10 / 1000), ("network2",
                                                                            0.5 / 1000)])
def test_l2_is_the_optimisers_and_equals_network3s_cost_term(scaling, decay):
    """network3 adds (λ/2)(m/n)Σw² to the cost; optim.sgd decays w by ηλm/n instead: the same step
    (network2: ηλ/n)."""
    net, params = small_net()
    x, y = jax.random.uniform(jax.random.key(2), (10, 8, 8, 1), F64), jnp.arange(10) % 4
    loss = convnet.make_loss(net.apply)
    cost_term = jax.jit(jax.grad(lambda p: loss(p, x, y)
                                 + decay * optim.l2_penalty(p, 1.0, 1)))(params)
    opt = optim.sgd(0.3, lmbda=0.5, n=1000, scaling=scaling, batch_size=10)
    step, _ = opt.update(jax.jit(convnet.make_grad(net.apply))(params, x, y), opt.init(params),
                         params)
    jax.tree_util.tree_map(lambda s, g: np.testing.assert_allclose(s, -0.3 * g, rtol=1e-9,
                                                                   atol=1e-15), step, cost_term)
    for p, s, g in zip(params, step, jax.jit(jax.grad(loss))(params, x, y)):
        if p:
            np.testing.assert_array_equal(s["b"], -0.3 * g["b"])  # biases are not decayed


def test_l2_sums_squares_of_weights_not_biases():
    params = ({"w": jnp.ones((2, 3)), "b": jnp.ones(2)}, (),
              {"w": 2 * jnp.ones((1, 2)), "b": jnp.ones(1)})
    assert float(optim.l2_penalty(params, 2.0, 1)) == 6 + 8


def test_evaluate_counts_correct_answers_in_chunks():
    net, params = small_net()
    x, y = jax.random.uniform(jax.random.key(3), (7, 8, 8, 1),
                              F64), jnp.array([0, 1, 2, 3, 0, 1, 2])
    z = net.apply(params, x)
    correct, cost = convnet.evaluate(params, x, y, apply=net.apply, chunk=3)  # 7 = 3 + 3 + 1
    assert int(correct) == int(jnp.sum(jnp.argmax(z, -1) == y))
    np.testing.assert_allclose(cost, convnet.log_likelihood(z, y), rtol=1e-12)
    np.testing.assert_allclose(convnet.probabilities(net.apply, params, x, chunk=3),
                               jax.nn.softmax(z), rtol=1e-12)


@pytest.mark.slow
@pytest.mark.mnist
def test_a_small_conv_net_learns_mnist(mnist):
    """conv8 → softmax, network3's settings, two fixed-order epochs on 2,000 images: well above
    chance."""
    net = convnet.build(convnet.network3_arch((8,), (), "relu"))
    _, params = net.init(jax.random.key(0), (28, 28, 1))
    x = jnp.asarray(mnist.training.x[:2000]).reshape(-1, 28, 28, 1)
    y = jnp.asarray(mnist.training.y[:2000])
    opt = optim.sgd(0.1, lmbda=0.1, n=2000, scaling="network3", batch_size=10)
    epoch = train.make_epoch(convnet.make_grad(net.apply), opt, 10, shuffle=False)
    state = train.State(params, opt.init(params), jax.random.key(0))
    for _ in range(2):
        state = epoch(state, x, y)
    correct, _ = convnet.evaluate(state.params, jnp.asarray(mnist.validation.x[:1000]).reshape(-1,
        28, 28, 1),
                                  jnp.asarray(mnist.validation.y[:1000]), apply=net.apply)
    assert int(correct) > 850
