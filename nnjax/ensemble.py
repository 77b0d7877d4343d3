"""Ensembles of networks trained as one vmapped, compiled program (ch6, "using an ensemble").

The book trains five copies of its best network from different random starts and lets
them vote, reaching 99.67%. Here the N members' parameters are stacked along a leading
member axis and ``nnjax.train.make_epoch(..., members=True)`` trains them as one program,
each member from its own key, exactly as alone (`nnjax.parallel.make_member_epoch`
spreads the members over devices).

Two ways to combine the members' outputs:
- `plurality_vote`: each member votes for its argmax digit; the most votes wins (the
  book's rule; ties go to the smallest digit);
- `mean_probability`: the argmax of the members' mean softmax output.
"""

import jax
import jax.numpy as jnp

Array = jax.Array


def init_members(init_fn, keys: Array, in_shape: tuple[int, ...]):
    """Stacked parameters of len(keys) members, member i from ``init_fn(keys[i], in_shape)``."""
    return jax.vmap(lambda k: init_fn(k, in_shape)[1])(keys)


def plurality_vote(predictions: Array, n_classes: int = 10) -> Array:
    """The most common label in each column of ``predictions`` (members, n); ties → smallest
    label."""
    votes = jax.nn.one_hot(predictions, n_classes, dtype=jnp.int32).sum(axis=0)
    return jnp.argmax(votes, axis=-1)


def mean_probability(probabilities: Array) -> Array:
    """argmax of the mean of the members' outputs a^L, ``probabilities`` of shape (members, n,
    classes)."""
    return jnp.argmax(jnp.mean(probabilities, axis=0), axis=-1)

