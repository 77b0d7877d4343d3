"""Mini-batch stochastic gradient descent as pure, compiled programs (ch1, ``SGD``).

- `make_step`: one update from one mini-batch's mean gradient.
- `make_epoch`: a whole epoch as one program: the training order is a permutation drawn
  from a key, and `lax.scan` runs the steps over mini-batches of indices into data that
  stays on the device. A last partial mini-batch is dropped, so every epoch has the same
  shape and compiles once.
- `fit`: the outer loop over epochs, evaluating after each one and returning a history
  (the series network2.py's ``SGD`` returns); it reports to an optional callback and
  never prints. Chapter 3's extras are keyword options: the regularisation term in the
  reported costs, early stopping by no-improvement-in-n and the η schedule (halve η at
  each no-improvement-in-n, stop at η₀/128).

`fit` receives the gradient function (hand-derived or autodiff) and never chooses it.
"""

import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from jax import lax

from nnjax.backprop import GradFn
from nnjax.network import Params
from nnjax.optim import set_hyperparams

Array = jax.Array


def make_step(grad_fn: GradFn, optimizer: optax.GradientTransformation):
    """``step(params, opt_state, x, y, key=None) -> (params, opt_state)`` for one mini-batch (ch1, eq. 20).

    A stochastic gradient (dropout, ch3/ch6) takes a fourth argument, its key; a step
    given ``key`` passes it on, a step without one calls ``grad_fn(params, x, y)``.
    """

    def step(params, opt_state, x, y, key=None):
        grads = grad_fn(params, x, y) if key is None else grad_fn(params, x, y, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


def batch_indices(key: Array | None, n: int, batch_size: int) -> Array:
    """Indices of each mini-batch, shape (n // batch_size, batch_size).

    With a key, the order is a fresh permutation (network.py reshuffles every epoch);
    with ``key=None`` it is the fixed order 0, 1, …, n − 1 (network3.py never reshuffles).
    The remainder n mod batch_size is left out of this epoch.
    """
    order = jnp.arange(n) if key is None else jax.random.permutation(key, n)
    steps = n // batch_size
    return order[: steps * batch_size].reshape(steps, batch_size)


def make_epoch(grad_fn: GradFn, optimizer: optax.GradientTransformation, batch_size: int,
               shuffle: bool = True, stochastic: bool = False):
    """``epoch(params, opt_state, key, x, y) -> (params, opt_state)``: one pass over (x, y).

    The whole epoch is one `lax.scan`; jit it (as `fit` does) to compile it once.
    shuffle: draw the training order from ``key`` (else the fixed order, as network3.py).
    stochastic: ``grad_fn`` takes a key (e.g. for dropout); step i gets its own key,
        split from ``key`` independently of the shuffle.
    """
    step = make_step(grad_fn, optimizer)

    def epoch(params, opt_state, key, x, y):
        shuffle_key, step_key = jax.random.split(key)
        indices = batch_indices(shuffle_key if shuffle else None, x.shape[0], batch_size)
        if stochastic:
            keys = jax.random.split(step_key, indices.shape[0])

            def body(carry, batch):
                idx, k = batch
                return step(*carry, x[idx], y[idx], k), None

            (params, opt_state), _ = lax.scan(body, (params, opt_state), (indices, keys))
        else:

            def body(carry, idx):
                return step(*carry, x[idx], y[idx]), None

            (params, opt_state), _ = lax.scan(body, (params, opt_state), indices)
        return params, opt_state

    return epoch


Evaluate = Callable[[Params, Array, Array], tuple[Array, Array]]
Penalty = Callable[[Params, int], Array]


def epochs_without_improvement(accuracy: Sequence[float], since: int = 0) -> int:
    """Epochs since the best accuracy so far, counting only epochs from index ``since`` on.

    The book's "no-improvement-in-n" (ch3, "early stopping"; the η schedule) fires when
    this reaches n. The best is the first epoch to reach the maximum, so a tie is no
    improvement.
    """
    if not accuracy:
        return 0
    best = max(range(len(accuracy)), key=lambda i: (accuracy[i], -i))
    return len(accuracy) - 1 - max(best, since - 1)


def _check_patience(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive number of epochs or None, got {value!r}")


def fit(
    params: Params,
    grad_fn: GradFn,
    optimizer: optax.GradientTransformation,
    training_data: tuple[Any, Any],
    *,
    epochs: int,
    batch_size: int,
    key: Array,
    evaluate: Evaluate | None = None,
    evaluation_data: tuple[Any, Any] | None = None,
    monitor_training: bool = False,
    shuffle: bool = True,
    stochastic: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    penalty: Penalty | None = None,
    stop_after: int | None = None,
    halve_eta_after: int | None = None,
    min_eta_fraction: float = 1 / 128,
) -> tuple[Params, dict[str, list]]:
    """Train for ``epochs`` epochs of mini-batch SGD (ch1 ``SGD``; ch3's monitored version).

    training_data, evaluation_data: (x, y) pairs, x of shape (n, n_in), y integer labels.
    key: the PRNG key; epoch e uses ``jax.random.fold_in(key, e)`` (see `make_epoch`).
    shuffle, stochastic: as in `make_epoch`.
    evaluate: ``(params, x, y) -> (number correct, mean cost)``, e.g.
        ``functools.partial(nnjax.network.evaluate, net=net)``; needed for monitoring.
    Returns the final parameters and a history with one entry per epoch:
    ``evaluation_accuracy`` (number correct) and ``evaluation_cost`` when evaluation
    data is given, ``training_accuracy`` and ``training_cost`` with ``monitor_training``,
    and ``seconds`` (wall time of the epoch's training, excluding evaluation).
    ``on_epoch`` is called after each epoch with that epoch's entries and ``epoch``.

    Chapter 3 options (both no-improvement rules watch ``evaluation_accuracy``):
    penalty: ``(params, size) -> term`` added to each reported cost, with size the number
        of examples evaluated; network2.py reports ``optim.l2_penalty(params, λ, size)``.
    stop_after: early stopping: end when ``stop_after`` epochs bring no new best.
    halve_eta_after: the η schedule: after that many epochs without a new best (counted
        afresh after each change), halve η; end when η would fall to η₀·min_eta_fraction
        (default 1/128). Needs an `nnjax.optim.sgd` optimiser (η lives in its state);
        the history then has ``learning_rate``, the η each epoch trained with.
    ``epochs`` stays the upper limit on the number of epochs.
    """
    x, y = (jnp.asarray(a) for a in training_data)
    n = x.shape[0]
    if not (isinstance(batch_size, int) and 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be an integer in [1, {n}] (the training set size), got {batch_size!r}")
    if not (isinstance(epochs, int) and epochs >= 0):
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")
    if (evaluation_data is not None or monitor_training) and evaluate is None:
        raise ValueError("monitoring needs an evaluate function, e.g. partial(network.evaluate, net=net)")
    if evaluation_data is not None:
        evaluation_data = tuple(jnp.asarray(a) for a in evaluation_data)
    _check_patience("stop_after", stop_after)
    _check_patience("halve_eta_after", halve_eta_after)
    if (stop_after or halve_eta_after) and evaluation_data is None:
        raise ValueError("early stopping and the η schedule watch evaluation accuracy: pass evaluation_data")
    if not 0 < min_eta_fraction < 1:
        raise ValueError(f"min_eta_fraction must be in (0, 1), got {min_eta_fraction!r}")

    run_epoch = jax.jit(make_epoch(grad_fn, optimizer, batch_size, shuffle, stochastic))
    opt_state = optimizer.init(params)
    if halve_eta_after is not None:
        if "learning_rate" not in getattr(opt_state, "hyperparams", {}):
            raise ValueError("the η schedule needs η in the optimiser state: use nnjax.optim.sgd")
        eta = eta0 = float(opt_state.hyperparams["learning_rate"])
        changed_at = 0
    history: dict[str, list] = {"epoch": [], "seconds": []}
    for e in range(epochs):
        start = time.perf_counter()
        params, opt_state = run_epoch(params, opt_state, jax.random.fold_in(key, e), x, y)
        jax.block_until_ready(params)
        record = {"epoch": e, "seconds": time.perf_counter() - start}
        if halve_eta_after is not None:
            record["learning_rate"] = eta
        if evaluation_data is not None:
            correct, c = evaluate(params, *evaluation_data)
            record["evaluation_accuracy"], record["evaluation_cost"] = int(correct), float(c)
        if monitor_training:
            correct, c = evaluate(params, x, y)
            record["training_accuracy"], record["training_cost"] = int(correct), float(c)
        if penalty is not None:  # network2.py reports the cost with the regularisation term
            for name, size in (("evaluation", len(evaluation_data[1]) if evaluation_data else 0), ("training", n)):
                if f"{name}_cost" in record:
                    record[f"{name}_cost"] += float(penalty(params, size))
        for k, v in record.items():
            history.setdefault(k, []).append(v)
        if on_epoch is not None:
            on_epoch(record)
        if stop_after is not None and epochs_without_improvement(history["evaluation_accuracy"]) >= stop_after:
            break
        if halve_eta_after is not None and (
                epochs_without_improvement(history["evaluation_accuracy"], changed_at) >= halve_eta_after):
            eta, changed_at = eta / 2, e + 1
            if eta <= eta0 * min_eta_fraction:
                break
            opt_state = set_hyperparams(opt_state, learning_rate=eta)
    return params, history
