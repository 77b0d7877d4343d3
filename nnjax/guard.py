"""The NaN/Inf guard of `nnjax.train.fit` (not in the book): stop a run whose numbers stopped being
numbers.

One `all_finite` check per epoch; on failure `locate` replays the epoch step by step.
See docs/design.md ("NaN guard").
"""

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nnjax.train import Piece, Run

Array = jax.Array


class NonFiniteError(FloatingPointError):
    """Training produced NaN or Inf; the message names the step and what went non-finite.

    epoch: the epoch in which it happened (0-based); step: the global step index
    (epoch · steps per epoch + mini-batch index) or None when only a cost was non-finite;
    history: the run's history up to the last finite epoch; checkpoint: the newest
    checkpoint file (all written before the failure), or None.
    """

    def __init__(self, message: str, *, epoch: int, step: int | None, history: dict,
                 checkpoint=None):
        super().__init__(message)
        self.epoch, self.step, self.history, self.checkpoint = epoch, step, history, checkpoint


def stopped(epoch: int, steps: int, index: int | None, what: str, history: dict,
            checkpoint) -> NonFiniteError:
    """The error for epoch ``epoch`` (``steps`` mini-batches each) whose mini-batch ``index``
    failed."""
    step = None if index is None else epoch * steps + index
    where = (f"epoch {epoch}" if step is None
             else f"step {step} (epoch {epoch}, mini-batch {index} of {steps})")
    last = (f"the newest checkpoint, {checkpoint}, was written before it" if checkpoint
            else "no checkpoint was written (pass checkpoint_dir to keep one)")
    return NonFiniteError(f"training stopped at {where}: {what}; {last}", epoch=epoch, step=step,
                          history=history, checkpoint=checkpoint)


@jax.jit
def all_finite(tree: Any) -> Array:
    """True when every element of every (floating-point) leaf is finite."""
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree_util.tree_leaves(tree)
              if jnp.issubdtype(a.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _counts(tree: Any) -> Array:
    """(leaves, 2): the number of NaN and of ±Inf elements in each leaf."""
    rows = [jnp.stack([jnp.sum(jnp.isnan(a)), jnp.sum(jnp.isinf(a))])
            if jnp.issubdtype(a.dtype, jnp.inexact) else jnp.zeros(2, jnp.int32)
            for a in jax.tree_util.tree_leaves(tree)]
    return jnp.stack(rows).astype(jnp.int32)


def describe(tree: Any, name: str, counts: np.ndarray | None = None) -> str:
    """e.g. "params[0]['w'] (23520 NaN), params[1]['b'] (2 Inf)": the non-finite leaves of
    ``tree``."""
    counts = np.asarray(_counts(tree)) if counts is None else counts
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    def kinds(c):
        return ", ".join(f"{n} {kind}" for n, kind in zip(c, ("NaN", "Inf")) if n)

    return ", ".join(f"{name}{p} ({kinds(c)})" for p, c in zip(paths, counts) if c.any())


def locate(build_epoch: Callable, grad_fn: Callable, state, *data) -> tuple[int | None, str]:
    """Replay one epoch step by step; return (index of its first non-finite step, what went wrong).

    build_epoch: ``grad_fn -> epoch(state, *data) -> state``, the epoch that failed built
    around another gradient function (one that reports every step through an ordered
    `jax.debug.callback`). The index is None if the replay stays finite.
    """
    seen = []

    def watched_grad(p, *args):
        g = grad_fn(p, *args)
        jax.debug.callback(lambda pc, gc: seen.append((np.asarray(pc), np.asarray(gc))),
                           _counts(p), _counts(g), ordered=True)
        return g

    end = build_epoch(watched_grad)(state, *data)
    jax.effects_barrier()
    params = state.params
    for i, (p_bad, g_bad) in enumerate(seen):
        if p_bad.any():  # the update of step i − 1 overflowed although its gradient was finite
            return max(i - 1, 0), (f"the update made the parameters non-finite "
                                   f"({describe(params, 'params', p_bad)}) although the gradient "
                                   "was finite")
        if g_bad.any():
            return i, (f"the gradient was non-finite ({describe(params, 'grad', g_bad)}) "
                       "while the parameters were finite")
    for tree, name, what in ((end.params, "params", "parameters"),
                             (end.opt_state, "opt_state", "optimiser state")):
        if not all_finite(tree):  # the epoch's last update
            return len(seen) - 1, f"the update made the {what} non-finite ({describe(tree, name)})"
    return None, "replaying the epoch gave finite values throughout (the failure did not reproduce)"


class Guard(Piece):
    """`NonFiniteError` once the parameters, optimiser state or a recorded cost is NaN/Inf (put
    it after `nnjax.monitor.Evaluate`, before `nnjax.checkpoint.Checkpoints`)."""

    def measure(self, run: Run) -> None:
        e, program, record = run.record["epoch"], run.program, run.record
        settings = getattr(program, "settings", None)
        steps = run.data[0].shape[0] // settings["batch_size"] if settings else 0
        if not all_finite((run.state.params, run.state.opt_state)):
            i, what = (locate(program.rebuild, program.grad_fn, run.before, *run.data)
                       if hasattr(program, "rebuild") and not program.members
                       else (None, "the parameters or optimiser state became non-finite"))
            raise stopped(e, steps, i, what, run.history, run.checkpoint)
        bad = [f"{k} = {record[k]}" for k in ("evaluation_cost", "training_cost")
               if not math.isfinite(record.get(k, 0))]
        if bad:
            raise stopped(e, steps, None, f"{' and '.join(bad)} although the parameters are finite",
                          run.history, run.checkpoint)
