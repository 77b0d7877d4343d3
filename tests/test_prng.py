"""PRNG hygiene: shuffling and dropout-style stochastic gradients in fit run under JAX's
key-reuse checker, every epoch and step gets its own key, and a resumed stochastic run
is bit-identical to an uninterrupted one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fitting  # tests/fitting.py: train.fit with the usual pieces
from nnjax import autodiff, checkpoint, init, network, optim, train

NET = network.Network((6, 5, 3))
pytestmark = pytest.mark.usefixtures("check_key_reuse")


def dropout_grad(params, x, y, key):
    """A stochastic gradient: drop each input with probability 1/2 (inverted dropout), one mask per
    step."""
    keep = jax.random.bernoulli(key, 0.5, x.shape)
    return autodiff.make_grad(NET)(params, jnp.where(keep, 2 * x, 0), y)


def data():
    rng = np.random.default_rng(0)
    return rng.random((40, 6), dtype=np.float32), rng.integers(0, 3, 40).astype(np.int32)


def fit(grad, epochs=3, **kw):
    params = init.init_params(jax.random.key(0), NET.sizes, "large")
    return fitting.fit(params, grad, optim.sgd(1.0), data(), epochs=epochs, batch_size=4,
                       key=jax.random.key(1), **kw)[0]


def test_checker_is_on_and_catches_reuse():
    key = jax.random.key(0)
    jax.random.normal(key)
    with pytest.raises(jax.errors.KeyReuseError):
        jax.random.normal(key)

    def reusing_grad(params, x, y, key):
        return dropout_grad(params, x + jax.random.normal(key, x.shape), y, key)

    with pytest.raises(jax.errors.KeyReuseError):
        fit(reusing_grad, stochastic=True)


@pytest.mark.slow
def test_shuffling_and_dropout_use_fresh_keys(tmp_path):
    a = fit(dropout_grad, stochastic=True)
    assert checkpoint.tree_digest(a) == checkpoint.tree_digest(fit(dropout_grad, stochastic=True))
    fixed = fit(dropout_grad, stochastic=True, shuffle=False)
    deterministic = fit(autodiff.make_grad(NET))
    assert len({checkpoint.tree_digest(p) for p in (a, fixed, deterministic)}) == 3
    fit(dropout_grad, epochs=2, stochastic=True, checkpoint_dir=tmp_path)
    resumed = fit(dropout_grad, epochs=3, stochastic=True, checkpoint_dir=tmp_path, resume=True)
    assert checkpoint.tree_digest(resumed) == checkpoint.tree_digest(a)


def test_epoch_orders_differ_and_cover_the_data():
    orders = [np.asarray(train.batch_indices(jax.random.fold_in(jax.random.key(1), e), 40, 4))
              for e in range(3)]
    for o in orders:
        assert sorted(o.ravel()) == list(range(40))
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
