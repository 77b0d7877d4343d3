"""Hyperparameter sweeps as one compiled program (ch3, "how to choose hyper-parameters").

k configurations that differ only in η, λ or μ (arrays in `nnjax.optim`'s state) are the
members of one `nnjax.train.State`; ``train.make_epoch(..., members=True)`` vmaps the
epoch over them, so member i follows exactly configuration i trained alone:

    state = sweep.init(stack([params] * 3), optim.sgd(0.1, lmbda=5.0, n=50_000),
                       {"learning_rate": jnp.array([0.025, 0.25, 2.5])}, keys)
    state, history = train.fit(train.make_epoch(grad, opt, 10, members=True), state, data,
    epochs=30,
                               pieces=[monitor.Evaluate(evaluate, validation, members=True)])
"""

from collections.abc import Mapping, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax

from nnjax import optim, validate
from nnjax.train import State

Array = jax.Array


def stack(trees: Sequence[Any]) -> Any:
    """k pytrees of the same structure → one pytree whose leaves have a leading axis k."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def member(tree: Any, i: int) -> Any:
    """Member i of a stacked pytree."""
    return jax.tree.map(lambda leaf: leaf[i], tree)


def size(tree: Any) -> int:
    """The number of members k of a stacked pytree."""
    return jax.tree.leaves(tree)[0].shape[0]


def init_states(optimizer: optax.GradientTransformation, params: Any,
                hyperparams: Mapping[str, Array]):
    """Stacked optimiser states: member i's state has ``hyperparams[name][i]`` for each name."""
    def one(p, hp):
        return optim.set_hyperparams(optimizer.init(p), **hp)

    return jax.vmap(one)(params, dict(hyperparams))


def init(params: Any, optimizer: optax.GradientTransformation, hyperparams: Mapping[str, Array],
         keys: Array) -> State:
    """The state of a sweep: stacked params (`stack`), optimiser states with member i's
    ``hyperparams`` ("learning_rate", "lmbda", "momentum"), and keys, member i's ``keys[i]``."""
    k = size(params)
    validate.expect(f"every hyperparameter array ({', '.join(hyperparams)}) and keys must have "
                    f"shape ({k},), one value per member", chex.assert_shape,
                    [*hyperparams.values(), keys], (k,))
    return State(params, init_states(optimizer, params, hyperparams), keys)
