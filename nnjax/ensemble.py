"""Ensembles of networks trained as one vmapped, compiled program (ch6, "using an ensemble").

The book trains five copies of its best network from different random starts and lets
them vote, reaching 99.67%. Here the N members' parameters are stacked along a leading
member axis and `make_epoch` is `jax.vmap` of the single-network epoch
(`nnjax.train.make_epoch`), so N networks train in one program: each member gets its own
key (its own initialisation, dropout masks and, if shuffled, training order) and sees
exactly what it would see trained alone. `nnjax.parallel.shard_members` spreads the
member axis over several devices (GPUs, or CPU devices under
``XLA_FLAGS=--xla_force_host_platform_device_count=N``), and jit then runs each device's
members in parallel (`nnjax.parallel.make_member_epoch`).

Two ways to combine the members' outputs:
- `plurality_vote`: each member votes for its argmax digit; the most votes wins (the
  book's rule; ties go to the smallest digit);
- `mean_probability`: the argmax of the members' mean softmax output.
"""

import jax
import jax.numpy as jnp

from nnjax import train

Array = jax.Array


def init_members(init_fn, keys: Array, in_shape: tuple[int, ...]):
    """Stacked parameters of len(keys) members, member i from ``init_fn(keys[i], in_shape)``."""
    return jax.vmap(lambda k: init_fn(k, in_shape)[1])(keys)


def make_epoch(grad_fn, optimizer, batch_size: int, shuffle: bool = True, stochastic: bool = False):
    """``epoch(params, opt_state, keys, x, y)``: `nnjax.train.make_epoch` vmapped over members.

    params, opt_state and keys carry a leading member axis; the data (x, y) is shared.
    """
    epoch = train.make_epoch(grad_fn, optimizer, batch_size, shuffle, stochastic)
    return jax.vmap(epoch, in_axes=(0, 0, 0, None, None))


def plurality_vote(predictions: Array, n_classes: int = 10) -> Array:
    """The most common label in each column of ``predictions`` (members, n); ties → smallest label."""
    votes = jax.nn.one_hot(predictions, n_classes, dtype=jnp.int32).sum(axis=0)
    return jnp.argmax(votes, axis=-1)


def mean_probability(probabilities: Array) -> Array:
    """argmax of the mean of the members' outputs a^L, ``probabilities`` of shape (members, n, classes)."""
    return jnp.argmax(jnp.mean(probabilities, axis=0), axis=-1)

