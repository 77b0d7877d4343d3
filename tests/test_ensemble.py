"""nnjax.ensemble: members trained as one vmapped program equal members trained alone; votes
(sharding: test_parallel.py)."""

import jax
import jax.numpy as jnp
import numpy as np

from nnjax import convnet, ensemble, optim, train

F64 = jnp.float64


def test_member_i_equals_the_member_trained_alone_after_one_step():
    arch = convnet.network3_arch((2,), (5,), "relu", n_out=3, dropout=0.25)
    net = convnet.build(arch)
    x = jax.random.uniform(jax.random.key(0), (5, 8, 8, 1), F64)
    y = jnp.array([0, 1, 2, 1, 0])
    grad = convnet.make_grad(net.apply)
    opt = optim.sgd(0.5, lmbda=0.1, n=5, scaling="network3", batch_size=5)
    k_init, k_train = jnp.stack([jax.random.split(jax.random.key(s)) for s in (3, 4, 5)], axis=1)
    params = jax.tree_util.tree_map(lambda p: p.astype(F64),
                                    ensemble.init_members(net.init, k_init, (8, 8, 1)))
    stepped = train.make_epoch(grad, opt, 5, shuffle=True, stochastic=True, members=True)(
        train.State(params, jax.vmap(opt.init)(params), k_train), x, y).params
    alone_epoch = train.make_epoch(grad, opt, 5, shuffle=True, stochastic=True)
    for i in range(3):
        start = jax.tree_util.tree_map(lambda p, i=i: p[i], params)
        expected_start = jax.tree_util.tree_map(lambda p: p.astype(F64),
                                                net.init(k_init[i], (8, 8, 1))[1])
        jax.tree_util.tree_map(np.testing.assert_array_equal, start, expected_start)
        alone = alone_epoch(train.State(start, opt.init(start), k_train[i]), x, y).params
        member = jax.tree_util.tree_map(lambda p, i=i: p[i], stepped)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12,
                                                                       atol=1e-14), member, alone)
    assert not np.allclose(stepped[-1]["w"][0], stepped[-1]["w"][1])  # members really differ


def test_plurality_vote_takes_the_most_common_label_ties_to_the_smallest():
    predictions = jnp.array([[1, 2, 3, 7], [1, 5, 4, 7], [0, 5, 3, 2], [1, 2, 4, 9]])
    np.testing.assert_array_equal(ensemble.plurality_vote(predictions), [1, 2, 3, 7])


def test_mean_probability_can_overrule_the_vote():
    # two weak votes for 0, one sure 1
    probs = jnp.array([[[0.6, 0.4]], [[0.6, 0.4]], [[0.0, 1.0]]])
    assert int(ensemble.mean_probability(probs)[0]) == 1
    assert int(ensemble.plurality_vote(jnp.argmax(probs, -1))[0]) == 0
