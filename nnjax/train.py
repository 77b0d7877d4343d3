"""Mini-batch SGD as compiled programs and `fit`, the one loop over epochs (ch1, ``SGD``).

Evaluation, early stopping, the η schedule, the NaN guard and checkpoints are `Piece`s `fit`
takes (`nnjax.monitor`, `guard.Guard`, `checkpoint.Checkpoints`; docs/design.md).
"""

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax import lax

from nnjax import validate

Array = jax.Array
GradFn = Callable[..., Any]  # (params, x, y[, key]) -> the mean gradient, shaped like params


@struct.dataclass
class State:
    """Params, optimiser state, key (member axis on all three for ensembles and sweeps), epochs
    done; extra: arrays checkpointed with them (e.g. `nnjax.monitor.counters`)."""

    params: Any
    opt_state: Any
    key: Array
    epoch: Array = struct.field(default_factory=lambda: jnp.zeros((), jnp.int32))
    extra: dict = struct.field(default_factory=dict)


def make_step(grad_fn: GradFn, optimizer: optax.GradientTransformation):
    """``step(params, opt_state, x, y, key=None)``: w → w − (η/m) Σ_x ∇C_x (ch1, eq. 20)."""

    def step(params, opt_state, x, y, key=None):
        grads = grad_fn(params, x, y) if key is None else grad_fn(params, x, y, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step


def batch_indices(key: Array | None, n: int, batch_size: int) -> Array:
    """(n // m, m) indices: a permutation from ``key`` (network.py), else 0…n−1 (network3.py)."""
    order = jnp.arange(n) if key is None else jax.random.permutation(key, n)
    steps = n // batch_size
    return order[: steps * batch_size].reshape(steps, batch_size)


def make_epoch(grad_fn: GradFn, optimizer: optax.GradientTransformation, batch_size: int,
               shuffle: bool = True, stochastic: bool = False, unroll: int = 1,
               members: bool = False, jit: bool = True):
    """``epoch(state, x, y) -> state``: one pass as one `lax.scan`, the remainder dropped (ch1).

    Epoch e's key ``fold_in(state.key, e)`` draws the order (if ``shuffle``) and each step's
    ``grad_fn`` key (if ``stochastic``: dropout). members: vmapped over the state's member
    axis, data shared, each member exactly as alone. unroll: `lax.scan`'s ``unroll``.
    """
    step = make_step(grad_fn, optimizer)

    def one(params, opt_state, key, x, y):
        shuffle_key, step_key = jax.random.split(key)
        indices = batch_indices(shuffle_key if shuffle else None, x.shape[0], batch_size)
        keys = jax.random.split(step_key, indices.shape[0]) if stochastic else None

        def body(carry, batch):
            return step(*carry, x[batch[0]], y[batch[0]], batch[1]), None
        return lax.scan(body, (params, opt_state), (indices, keys), unroll=unroll)[0]

    fold = jax.vmap(jax.random.fold_in, (0, None)) if members else jax.random.fold_in
    run = jax.vmap(one, in_axes=(0, 0, 0, None, None)) if members else one

    def epoch(state: State, x, y) -> State:
        params, opt_state = run(state.params, state.opt_state, fold(state.key, state.epoch), x, y)
        return state.replace(params=params, opt_state=opt_state, epoch=state.epoch + 1)

    program = jax.jit(epoch) if jit else epoch
    program.grad_fn, program.members = grad_fn, members
    program.settings = {"batch_size": batch_size, "shuffle": shuffle, "stochastic": stochastic}
    program.rebuild = lambda g: make_epoch(g, optimizer, batch_size, shuffle, stochastic, unroll,
                                           members, jit)
    program.check = lambda state, data: _check(program, state, data)
    return program


def _check(program, state: State, data) -> tuple:
    """The training data, checked; an epoch and a gradient traced abstractly to fail clearly."""
    if not isinstance(data, (tuple, list)) or len(data) != 2 or jnp.ndim(data[0]) != 4:
        data = validate.data_pair("training_data", data)
    (x, y), batch_size = data, program.settings["batch_size"]
    validate.integer("batch_size", batch_size, 1, x.shape[0])
    params, key = state.params, state.key
    params, key = jax.tree.map(lambda a: a[0], (params, key)) if program.members else (params, key)
    validate.prng_key("key", key)

    batch = [jax.ShapeDtypeStruct((batch_size, *a.shape[1:]), a.dtype) for a in (x, y)]
    try:
        jax.eval_shape(program, state, x, y)
        grads = jax.eval_shape(program.grad_fn, params, *batch,
                               *((key,) if program.settings["stochastic"] else ()))
    except Exception as err:
        raise err if isinstance(err, jax.errors.KeyReuseError) else ValueError(
            f"params and training_data (x {x.shape} {x.dtype}, y {y.shape} {y.dtype}) do not fit "
            f"the gradient function: one epoch fails to trace with {type(err).__name__}: "
            f"{err}") from err
    # shapes, not dtypes: optax casts each update to its parameter's dtype
    validate.expect("the gradient function must return a pytree shaped like params",
                    chex.assert_trees_all_equal_shapes, grads, params)
    return x, y


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped `fit`; history: the finished epochs', checkpoint: the newest written."""

    def __init__(self, history: dict[str, list], checkpoint_path=None):
        done = min(map(len, history.values()), default=0)  # Ctrl-C may land between two appends
        super().__init__(f"interrupted after {done} finished epoch(s)")
        self.history = {k: v[:done] for k, v in history.items()}
        self.checkpoint = checkpoint_path


@dataclasses.dataclass
class Run:  # what `fit`'s pieces see and may change
    program: Callable
    state: State
    data: tuple
    epochs: int
    pieces: Sequence["Piece"]
    history: dict = dataclasses.field(default_factory=lambda: {"epoch": [], "seconds": []})
    record: dict = dataclasses.field(default_factory=dict)  # this epoch's entries
    before: State | None = None  # the state this epoch started from
    checkpoint: Any = None  # the newest checkpoint written or resumed from
    stop: bool = False  # set by a piece to end the run after this epoch


class Piece:
    """A part of `fit`'s loop: ``start`` before the first epoch, ``measure`` after each (adding to
    ``run.record``), ``after`` once it is in the history; run in the order given."""

    def start(self, run: Run) -> None: ...
    def measure(self, run: Run) -> None: ...
    def after(self, run: Run) -> None: ...


def fit(program: Callable, state: State, data: tuple, *, epochs: int, pieces: Sequence[Piece] = (),
        on_epoch: Callable[[dict], None] | None = None) -> tuple[State, dict[str, list]]:
    """Run ``program(state, *data) -> state`` until ``state.epoch`` is ``epochs`` or a piece stops.

    program: any compiled epoch (`make_epoch`, `nnjax.parallel`'s); data: its jit arguments.
    Returns the last state and the history: per epoch ``epoch``, ``seconds`` and what the pieces
    record, also passed to ``on_epoch``. Ctrl-C raises `Interrupted`. Arguments are checked first.
    """
    validate.integer("epochs", epochs, 0)
    data = program.check(state, data) if hasattr(program, "check") else tuple(data)
    run = Run(program, state, data, epochs, pieces)
    for piece in pieces:
        piece.start(run)
    try:
        while not run.stop and int(run.state.epoch) < epochs:
            e, start = int(run.state.epoch), time.perf_counter()
            run.before, run.state = run.state, jax.block_until_ready(program(run.state, *run.data))
            run.record = {"epoch": e, "seconds": time.perf_counter() - start}
            for piece in pieces:
                piece.measure(run)
            for k, v in run.record.items():
                run.history.setdefault(k, []).append(v)
            for piece in pieces:
                piece.after(run)
            if on_epoch is not None:
                on_epoch(run.record)
    except KeyboardInterrupt:
        raise Interrupted(run.history, run.checkpoint) from None
    return run.state, run.history
