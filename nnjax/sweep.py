"""Hyperparameter sweeps as one compiled program (ch3, "how to choose hyper-parameters").

Chapter 3 tunes η and λ by training the same network several times. Because `nnjax.optim`
keeps η, λ and μ as arrays in the optimiser state, k configurations that differ only in
those values can be *members* of one program: parameters and optimiser states carry a
leading member axis of size k, and `jax.vmap` maps the compiled epoch over it while the
training data is shared. Member i follows exactly the computation `nnjax.train.fit`
does for configuration i alone (same key, same hyperparameters).

    params = stack([init_params(k, sizes, "default") for k in init_keys])
    params, history = fit(params, grad_fn, optim.sgd(0.1, lmbda=5.0, n=50_000), data,
                          hyperparams={"learning_rate": jnp.array([0.025, 0.25, 2.5])},
                          epochs=30, batch_size=10, keys=train_keys, ...)
"""

import os
import time
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from nnjax import checkpoint, optim, train
from nnjax.backprop import GradFn

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


def init_states(optimizer: optax.GradientTransformation, params: Any, hyperparams: Mapping[str, Array]):
    """Stacked optimiser states: member i's state has ``hyperparams[name][i]`` for each name."""
    return jax.vmap(lambda p, hp: optim.set_hyperparams(optimizer.init(p), **hp))(params, dict(hyperparams))


def make_epoch(grad_fn: GradFn, optimizer: optax.GradientTransformation, batch_size: int,
               shuffle: bool = True, stochastic: bool = False):
    """``epoch(params, opt_states, keys, x, y)``: `nnjax.train.make_epoch` vmapped over members.

    params, opt_states and keys carry the member axis; the data x, y is shared.
    """
    one = train.make_epoch(grad_fn, optimizer, batch_size, shuffle, stochastic)
    return jax.vmap(one, in_axes=(0, 0, 0, None, None))


def fit(params: Any, grad_fn: GradFn, optimizer: optax.GradientTransformation, training_data, *,
        hyperparams: Mapping[str, Array], epochs: int, batch_size: int, keys: Array,
        evaluate: Callable | None = None, evaluation_data=None, monitor_training: bool = False,
        penalty: Callable | None = None, shuffle: bool = True, stochastic: bool = False,
        on_epoch: Callable[[dict], None] | None = None, checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int = 1, checkpoint_config: dict | None = None, resume: bool = False):
    """Train k members at once; `nnjax.train.fit` semantics member by member.

    params: stacked (see `stack`); keys: (k,) PRNG keys, member i's epoch e uses
    ``fold_in(keys[i], e)`` as `nnjax.train.fit` does. hyperparams: arrays of length k
    for the optimiser's injected hyperparameters ("learning_rate", "lmbda", "momentum").
    evaluate: ``(params, x, y) -> (correct, mean cost)`` for one member (vmapped here).
    penalty: ``(params, lmbda, size) -> term`` such as `nnjax.optim.l2_penalty`, added to
    each reported cost with the member's own λ.
    Returns the stacked final parameters and a history whose entries are, per epoch, a
    list with one value per member (``seconds`` is the whole program's epoch time).
    checkpoint_dir, checkpoint_every, checkpoint_config, resume: as in `nnjax.train.fit`
    (the state saved is the stacked params, optimiser states and keys); Ctrl-C raises
    `nnjax.train.Interrupted` with the history of the finished epochs.
    """
    k = size(params)
    x, y = (jnp.asarray(a) for a in training_data)
    bad = {name: jnp.shape(v) for name, v in hyperparams.items() if jnp.shape(v) != (k,)}
    if bad or jnp.shape(keys) != (k,):
        raise ValueError(f"every hyperparameter array and keys must have shape ({k},) (one value per member); "
                         f"got hyperparameters {bad or 'ok'} and keys {jnp.shape(keys)}")
    if (evaluation_data is not None or monitor_training) and evaluate is None:
        raise ValueError("monitoring needs an evaluate function, e.g. partial(network.evaluate, net=net)")
    opt_states = init_states(optimizer, params, hyperparams)
    run_epoch = jax.jit(make_epoch(grad_fn, optimizer, batch_size, shuffle, stochastic))
    score = jax.jit(jax.vmap(evaluate, in_axes=(0, None, None))) if evaluate else None
    term = jax.jit(jax.vmap(penalty, in_axes=(0, 0, None)), static_argnums=2) if penalty else None
    sets = {"evaluation": evaluation_data, "training": (x, y) if monitor_training else None}
    history: dict[str, list] = {"epoch": [], "seconds": []}
    start_epoch, ckpt = 0, None
    config = {"batch_size": batch_size, "shuffle": shuffle, "stochastic": stochastic,
              "training_data": [list(x.shape), str(x.dtype)], "run": checkpoint_config}
    if checkpoint_dir is not None:
        found = checkpoint.resume_point(checkpoint_dir, {"params": params, "opt_state": opt_states, "key": keys},
                                        config=config, key=keys, epochs=epochs, resume=resume)
        if found is not None:
            params, opt_states, history = found.state["params"], found.state["opt_state"], found.history
            start_epoch, ckpt = found.epoch, found.path
    try:
        for e in range(start_epoch, epochs):
            start = time.perf_counter()
            epoch_keys = jax.vmap(lambda key: jax.random.fold_in(key, e))(keys)
            params, opt_states = run_epoch(params, opt_states, epoch_keys, x, y)
            jax.block_until_ready(params)
            record = {"epoch": e, "seconds": time.perf_counter() - start}
            for name, data in sets.items():
                if data is None:
                    continue
                correct, c = score(params, *(jnp.asarray(a) for a in data))
                if term is not None:
                    c = c + term(params, opt_states.hyperparams["lmbda"], len(data[1]))
                record[f"{name}_accuracy"], record[f"{name}_cost"] = correct.tolist(), c.tolist()
            for key_, v in record.items():
                history.setdefault(key_, []).append(v)
            if checkpoint_dir is not None and ((e + 1) % checkpoint_every == 0 or e + 1 == epochs):
                ckpt = checkpoint.save(checkpoint_dir, e + 1, {"params": params, "opt_state": opt_states, "key": keys},
                                       history=history, config=config)
            if on_epoch is not None:
                on_epoch(record)
    except KeyboardInterrupt:
        raise train.Interrupted(history, ckpt) from None
    return params, history
