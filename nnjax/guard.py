"""The NaN/Inf guard of `nnjax.train.fit`: stop a run whose numbers stopped being numbers.

Not a chapter of the book: network.py trains on whatever its floats do, so a run whose
weights overflow goes on for the remaining epochs scoring chance with NaN weights.

The guard costs one reduction per epoch: `all_finite` of the parameters and optimiser
state after the compiled epoch. Under SGD-like updates a non-finite parameter stays
non-finite (w − η g with w = ±Inf or NaN is never finite again), so that single check
misses no step. Only when it fails does `locate` replay the epoch from its starting state,
with the same key, watching every step, to name the first step that went non-finite and
what did (a gradient, or the update itself). The replay is exact because an epoch is a
deterministic function of (params, opt_state, key, data).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class NonFiniteError(FloatingPointError):
    """Training produced NaN or Inf; the message names the step and what went non-finite.

    epoch: the epoch in which it happened (0-based); step: the global step index
    (epoch · steps per epoch + mini-batch index) or None when only a cost was non-finite;
    history: the run's history up to the last finite epoch; checkpoint: the newest
    checkpoint file (all written before the failure), or None.
    """

    def __init__(self, message: str, *, epoch: int, step: int | None, history: dict, checkpoint=None):
        super().__init__(message)
        self.epoch, self.step, self.history, self.checkpoint = epoch, step, history, checkpoint


def stopped(epoch: int, steps: int, index: int | None, what: str, history: dict, checkpoint) -> NonFiniteError:
    """The error for epoch ``epoch`` (``steps`` mini-batches each) whose mini-batch ``index`` failed."""
    step = None if index is None else epoch * steps + index
    where = f"epoch {epoch}" if step is None else f"step {step} (epoch {epoch}, mini-batch {index} of {steps})"
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
    """e.g. "params[0]['w'] (23520 NaN), params[1]['b'] (2 Inf)": the non-finite leaves of ``tree``."""
    counts = np.asarray(_counts(tree)) if counts is None else counts
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    return ", ".join(f"{name}{p} (" + ", ".join(f"{n} {kind}" for n, kind in zip(c, ("NaN", "Inf")) if n) + ")"
                     for p, c in zip(paths, counts) if c.any())


def locate(build_epoch: Callable, grad_fn: Callable, params, opt_state, key: Array, x: Array,
           y: Array) -> tuple[int | None, str]:
    """Replay one epoch step by step; return (index of its first non-finite step, what went wrong).

    build_epoch: ``grad_fn -> epoch(params, opt_state, key, x, y)``, the epoch that failed
    built around another gradient function (here one that reports on every step through
    an ordered `jax.debug.callback`). The index is None if the replay stays finite.
    """
    seen = []

    def watched_grad(p, *args):
        g = grad_fn(p, *args)
        jax.debug.callback(lambda pc, gc: seen.append((np.asarray(pc), np.asarray(gc))),
                           _counts(p), _counts(g), ordered=True)
        return g

    end = jax.jit(build_epoch(watched_grad))(params, opt_state, key, x, y)
    jax.effects_barrier()
    for i, (p_bad, g_bad) in enumerate(seen):
        if p_bad.any():  # the update of step i − 1 overflowed although its gradient was finite
            return max(i - 1, 0), (f"the update made the parameters non-finite "
                                   f"({describe(params, 'params', p_bad)}) although the gradient was finite")
        if g_bad.any():
            return i, (f"the gradient was non-finite ({describe(params, 'grad', g_bad)}) "
                       "while the parameters were finite")
    for tree, name, what in zip(end, ("params", "opt_state"), ("parameters", "optimiser state")):
        if not all_finite(tree):  # the epoch's last update
            return len(seen) - 1, f"the update made the {what} non-finite ({describe(tree, name)})"
    return None, "replaying the epoch gave finite values throughout (the failure did not reproduce)"
