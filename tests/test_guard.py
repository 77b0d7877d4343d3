"""Tests for the NaN/Inf guard (nnjax.guard and fit's nan_guard): a non-finite update,
gradient or cost stops the run at the right step with a message that says what went
non-finite, nothing non-finite is checkpointed, and the last checkpoint holds the state
of a clean run."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fitting  # tests/fitting.py: train.fit with the usual pieces
from experiments.reliability import nan_at_step
from nnjax import autodiff, checkpoint, guard, init, network, optim, train

NET = network.Network((6, 5, 3))
N, BATCH = 40, 4
STEPS = N // BATCH


def problem(marker_row=None):
    rng = np.random.default_rng(0)
    x, y = rng.random((N, 6), dtype=np.float32), rng.integers(0, 3, N).astype(np.int32)
    if marker_row is not None:
        x[marker_row, 0] = 7.0  # finite, but the poisoned gradient below turns it into NaN
    return x, y


def poisoned_grad(params, x, y):
    """The autodiff gradient, NaN for a mini-batch that holds the marker value 7.0."""
    grads = autodiff.make_grad(NET)(params, x, y)
    return jax.tree_util.tree_map(lambda g: jnp.where(jnp.any(x[:, 0] == 7.0), jnp.nan, g), grads)


def fit(optimizer=None, grad=None, data=None, **kw):
    params = init.init_params(jax.random.key(0), NET.sizes, "large")
    return fitting.fit(params, grad or autodiff.make_grad(NET), optimizer or optim.sgd(3.0),
                       data or problem(),
                     epochs=4, batch_size=BATCH, key=jax.random.key(1), **kw)


def test_all_finite_and_describe():
    tree = {"a": jnp.array([1.0, jnp.nan, jnp.inf, -jnp.inf]), "b": jnp.arange(3), "c": jnp.ones(2)}
    assert not guard.all_finite(tree) and guard.all_finite({"b": tree["b"], "c": tree["c"]})
    assert guard.describe(tree, "t") == "t['a'] (1 NaN, 2 Inf)"


# first step, an epoch's last, a later one
@pytest.mark.parametrize("k", [0, STEPS - 1, 3 * STEPS + 5])
def test_nan_update_is_caught_at_its_step(tmp_path, k):
    with pytest.raises(guard.NonFiniteError) as info:
        fit(optax.chain(optim.sgd(3.0), nan_at_step(k)), checkpoint_dir=tmp_path)
    e = info.value
    assert e.step == k and e.epoch == k // STEPS
    msg = str(e)
    assert f"step {k} (epoch {k // STEPS}, mini-batch {k % STEPS} of {STEPS})" in msg
    assert "the update made the parameters non-finite" in msg and "params[0]['w'] (30 NaN)" in msg
    assert e.history["epoch"] == list(range(k // STEPS))
    saved = checkpoint.list_checkpoints(tmp_path)
    assert [p.name for p in saved][-1:] == ([f"epoch-{k // STEPS:06d}.ckpt"] if k >= STEPS else [])
    if saved:
        assert str(saved[-1]) in msg and e.checkpoint == saved[-1]
        restored = fitting.load_checkpoint(tmp_path, init.init_params(jax.random.key(0), NET.sizes),
                                         optax.chain(optim.sgd(3.0), nan_at_step(k)),
                                           jax.random.key(1)).state
        clean = fitting.fit(init.init_params(jax.random.key(0), NET.sizes, "large"),
                            autodiff.make_grad(NET),
                          optim.sgd(3.0), problem(), epochs=k // STEPS, batch_size=BATCH,
                            key=jax.random.key(1))[0]
        assert guard.all_finite(restored)
        assert checkpoint.tree_digest(restored["params"]) == checkpoint.tree_digest(clean)
    else:
        assert "no checkpoint was written" in msg and e.checkpoint is None


def test_nan_gradient_is_named():
    row = 17  # without shuffling, example 17 is in mini-batch 17 // 4 = 4 of every epoch
    with pytest.raises(guard.NonFiniteError) as info:
        fit(grad=poisoned_grad, data=problem(marker_row=row), shuffle=False)
    assert info.value.step == row // BATCH
    assert f"step {row // BATCH} (epoch 0" in str(info.value)
    assert "the gradient was non-finite (grad[0]['b'] (5 NaN)" in str(info.value)
    assert "no checkpoint was written" in str(info.value)


def test_non_finite_cost_stops_the_run():
    def nan_cost(params, x, y):
        return jnp.sum(y >= 0), jnp.float32(jnp.nan)

    with pytest.raises(guard.NonFiniteError, match="epoch 0: evaluation_cost = nan although the "
                                                   "parameters are finite"):
        fit(evaluate=nan_cost, evaluation_data=problem())


def test_guard_off_lets_nan_through():
    params, history = fit(optax.chain(optim.sgd(3.0), nan_at_step(5)), nan_guard=False)
    assert not guard.all_finite(params) and history["epoch"] == [0, 1, 2, 3]


def test_locate_reports_a_replay_that_stays_finite():
    params = init.init_params(jax.random.key(0), NET.sizes, "large")
    opt = optim.sgd(3.0)
    build = partial(train.make_epoch, optimizer=opt, batch_size=BATCH)
    x, y = problem()
    state = train.State(params, opt.init(params), jax.random.key(2))
    index, what = guard.locate(build, autodiff.make_grad(NET), state, x, y)
    assert index is None and "did not reproduce" in what
