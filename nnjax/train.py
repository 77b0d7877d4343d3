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

import math
import os
import time
from functools import partial
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax
from jax import lax

from nnjax import checkpoint, guard, validate
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
               shuffle: bool = True, stochastic: bool = False, unroll: int = 1):
    """``epoch(params, opt_state, key, x, y) -> (params, opt_state)``: one pass over (x, y).

    The whole epoch is one `lax.scan`; jit it (as `fit` does) to compile it once.
    shuffle: draw the training order from ``key`` (else the fixed order, as network3.py).
    stochastic: ``grad_fn`` takes a key (e.g. for dropout); step i gets its own key,
        split from ``key`` independently of the shuffle.
    unroll: steps per iteration of the compiled loop (`lax.scan`'s ``unroll``); the same
        result, less loop overhead per step and a longer compile (see experiments/bench_profile.py).
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

            (params, opt_state), _ = lax.scan(body, (params, opt_state), (indices, keys), unroll=unroll)
        else:

            def body(carry, idx):
                return step(*carry, x[idx], y[idx]), None

            (params, opt_state), _ = lax.scan(body, (params, opt_state), indices, unroll=unroll)
        return params, opt_state

    return epoch


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or a KeyboardInterrupt from ``on_epoch``) stopped `fit` between or inside epochs.

    history: the history of the epochs that finished; checkpoint: the newest checkpoint
        written (a resume redoes the epochs after it), or None.
    """

    def __init__(self, history: dict[str, list], checkpoint_path=None):
        done = min(map(len, history.values()), default=0)  # Ctrl-C may land between two appends
        super().__init__(f"interrupted after {done} finished epoch(s)")
        self.history = {k: v[:done] for k, v in history.items()}
        self.checkpoint = checkpoint_path


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
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int = 1,
    checkpoint_config: dict | None = None,
    resume: bool = False,
    nan_guard: bool = True,
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
    ``on_epoch`` is called after each epoch (and its checkpoint) with that epoch's entries
    and ``epoch``. A KeyboardInterrupt (Ctrl-C, or raised by ``on_epoch``) becomes
    `Interrupted`, which carries the history of the finished epochs.

    Chapter 3 options (both no-improvement rules watch ``evaluation_accuracy``):
    penalty: ``(params, size) -> term`` added to each reported cost, with size the number
        of examples evaluated; network2.py reports ``optim.l2_penalty(params, λ, size)``.
    stop_after: early stopping: end when ``stop_after`` epochs bring no new best.
    halve_eta_after: the η schedule: after that many epochs without a new best (counted
        afresh after each change), halve η; end when η would fall to η₀·min_eta_fraction
        (default 1/128). Needs an `nnjax.optim.sgd` optimiser (η lives in its state);
        the history then has ``learning_rate``, the η each epoch trained with.
    ``epochs`` stays the upper limit on the number of epochs.

    Reliability options (docs/reliability.md):
    checkpoint_dir: save the whole state (params, optimiser state, key, the η schedule's
        and early stopping's counters, history, settings) there every ``checkpoint_every``
        epochs and at the end (`nnjax.checkpoint`). With ``resume``, continue from its
        newest intact checkpoint (or start afresh if it has none): since epoch e's key
        depends only on (key, e), the result is bit-identical to an uninterrupted run.
        Resuming needs the same key, batch_size, shuffle, stochastic, data shapes and
        ``checkpoint_config`` (any JSON-like settings to pin).
    nan_guard: stop with `nnjax.guard.NonFiniteError`, naming the first non-finite step
        and what went non-finite, as soon as the parameters, optimiser state or a
        monitored cost become NaN/Inf; the epoch that produced them is not checkpointed.
    Arguments are checked before anything is compiled (`nnjax.validate`).
    """
    x, y = validate.data_pair("training_data", training_data)
    n = x.shape[0]
    validate.integer("batch_size", batch_size, 1, n)
    validate.integer("epochs", epochs, 0)
    validate.integer("checkpoint_every", checkpoint_every, 1)
    validate.prng_key("key", key)
    if (evaluation_data is not None or monitor_training) and evaluate is None:
        raise ValueError("monitoring needs an evaluate function, e.g. partial(network.evaluate, net=net)")
    if evaluation_data is not None:
        evaluation_data = validate.data_pair("evaluation_data", evaluation_data)
        if evaluation_data[0].shape[1] != x.shape[1]:
            raise ValueError(f"evaluation_data: x has {evaluation_data[0].shape[1]} columns, "
                             f"training_data's x has {x.shape[1]}")
    _check_patience("stop_after", stop_after)
    _check_patience("halve_eta_after", halve_eta_after)
    if (stop_after or halve_eta_after) and evaluation_data is None:
        raise ValueError("early stopping and the η schedule watch evaluation accuracy: pass evaluation_data")
    if not 0 < min_eta_fraction < 1:
        raise ValueError(f"min_eta_fraction must be in (0, 1), got {min_eta_fraction!r}")

    build_epoch = partial(make_epoch, optimizer=optimizer, batch_size=batch_size, shuffle=shuffle,
                          stochastic=stochastic)
    run_epoch = jax.jit(build_epoch(grad_fn))
    opt_state = optimizer.init(params)
    _probe(run_epoch, grad_fn, params, opt_state, key, x, y, batch_size, stochastic)
    if halve_eta_after is not None:
        if "learning_rate" not in getattr(opt_state, "hyperparams", {}):
            raise ValueError("the η schedule needs η in the optimiser state: use nnjax.optim.sgd")
        eta0 = float(opt_state.hyperparams["learning_rate"])
    history: dict[str, list] = {"epoch": [], "seconds": []}
    start_epoch, changed_at, stopped, ckpt, steps = 0, 0, False, None, n // batch_size
    config = {"batch_size": batch_size, "shuffle": shuffle, "stochastic": stochastic,
              "training_data": [list(x.shape), str(x.dtype), list(y.shape), str(y.dtype)],
              "run": checkpoint_config}
    if checkpoint_dir is not None:
        found = checkpoint.resume_point(checkpoint_dir, _state(params, opt_state, key, changed_at, stopped),
                                        config=config, key=key, epochs=epochs, resume=resume)
        if found is not None:
            params, opt_state, history = found.state["params"], found.state["opt_state"], found.history
            start_epoch, ckpt = found.epoch, found.path
            changed_at, stopped = int(found.state["changed_at"]), bool(found.state["stopped"])
            if stopped:  # early stopping or the η schedule had ended the run
                return params, history
    if halve_eta_after is not None:
        eta = float(opt_state.hyperparams["learning_rate"])
    try:
        for e in range(start_epoch, epochs):
            start = time.perf_counter()
            new_params, new_opt_state = run_epoch(params, opt_state, jax.random.fold_in(key, e), x, y)
            jax.block_until_ready(new_params)
            record = {"epoch": e, "seconds": time.perf_counter() - start}
            if nan_guard and not guard.all_finite((new_params, new_opt_state)):
                i, what = guard.locate(build_epoch, grad_fn, params, opt_state, jax.random.fold_in(key, e), x, y)
                raise guard.stopped(e, steps, i, what, history, ckpt)
            params, opt_state = new_params, new_opt_state
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
            bad = [f"{k} = {record[k]}" for k in ("evaluation_cost", "training_cost") if not math.isfinite(record.get(k, 0))]
            if nan_guard and bad:
                raise guard.stopped(e, steps, None, f"{' and '.join(bad)} although the parameters are finite", history, ckpt)
            for k, v in record.items():
                history.setdefault(k, []).append(v)
            if stop_after is not None and epochs_without_improvement(history["evaluation_accuracy"]) >= stop_after:
                stopped = True
            elif halve_eta_after is not None and (
                    epochs_without_improvement(history["evaluation_accuracy"], changed_at) >= halve_eta_after):
                eta, changed_at = eta / 2, e + 1
                stopped = eta <= eta0 * min_eta_fraction
                if not stopped:
                    opt_state = set_hyperparams(opt_state, learning_rate=eta)
            if checkpoint_dir is not None and ((e + 1) % checkpoint_every == 0 or e + 1 == epochs or stopped):
                ckpt = checkpoint.save(checkpoint_dir, e + 1, _state(params, opt_state, key, changed_at, stopped),
                                       history=history, config=config)
            if on_epoch is not None:  # after the checkpoint: what is reported is saved
                on_epoch(record)
            if stopped:
                break
    except KeyboardInterrupt:
        raise Interrupted(history, ckpt) from None
    return params, history


def _state(params, opt_state, key, changed_at: int, stopped: bool) -> dict:
    """What a checkpoint holds besides history and settings: the state the next epoch starts from."""
    return {"params": params, "opt_state": opt_state, "key": key,
            "changed_at": jnp.asarray(changed_at, jnp.int32), "stopped": jnp.asarray(stopped)}


def load_checkpoint(directory: str | os.PathLike, params: Params, optimizer: optax.GradientTransformation,
                    key: Array) -> checkpoint.Checkpoint | None:
    """The newest intact checkpoint `fit` wrote in ``directory`` (None if there is none).

    params, optimizer, key: those of the run (any params of the right shapes); they give
    the structure to restore into. ``.state["params"]`` and ``.state["opt_state"]`` are
    the state after ``.epoch`` epochs; ``.history`` the history up to then.
    """
    return checkpoint.restore(directory, _state(params, optimizer.init(params), key, 0, False))


def _probe(run_epoch, grad_fn, params, opt_state, key, x, y, batch_size, stochastic) -> None:
    """Trace one epoch and one gradient abstractly (no compute), so mismatches fail clearly."""
    def shapes(tree):
        return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)), tree)

    def signature(tree):  # dtypes may differ: optax casts each update to its parameter's dtype
        return jax.tree_util.tree_structure(tree), [a.shape for a in jax.tree_util.tree_leaves(shapes(tree))]

    batch = [jax.ShapeDtypeStruct((batch_size, *a.shape[1:]), a.dtype) for a in (x, y)]
    try:
        jax.eval_shape(run_epoch, params, opt_state, *shapes((key, x, y)))
        grads = jax.eval_shape(grad_fn, params, *batch, *shapes((key,) if stochastic else ()))
    except jax.errors.KeyReuseError:
        raise
    except Exception as err:
        raise ValueError(f"params and training_data (x {x.shape} {x.dtype}, y {y.shape} {y.dtype}) do not fit "
                         f"the gradient function: one epoch fails to trace with {type(err).__name__}: {err}") from err
    if signature(grads) != signature(params):
        raise ValueError("the gradient function must return a pytree shaped like params; it turns "
                         f"params {signature(params)} into gradients {signature(grads)}")
