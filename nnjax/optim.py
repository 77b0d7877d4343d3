"""The book's update rules as optax gradient transformations (ch1, ch3, ch6).

Chapter 1's mini-batch stochastic gradient descent is
    w → w′ = w − (η/m) Σ_x ∂C_x/∂w,   b → b′ = b − (η/m) Σ_x ∂C_x/∂b   (ch1, eqs. 20–21),
i.e. a step of −η along the mean gradient that `nnjax.backprop.make_grad` and
`nnjax.autodiff.make_grad` return. Chapter 3 adds to it, and `sgd` builds each rule from
optax pieces (one gradient transformation per term, composed with ``optax.chain``):

- L2 (network2.py, ch3 eq. 93):  w → (1 − ηλ/n) w − η·mean_grad. The penalty's gradient
  (λ/n) w is added to the weights' gradient by ``optax.add_decayed_weights``, masked so
  that biases are never decayed. network3.py (ch6) adds ½λΣw²/(n/m) to the mini-batch
  mean cost instead, i.e. a per-step decay ηλm/n: the same transformation with λm/n.
- L1 (ch3 eq. 97):  w → w − (ηλ/n) sgn(w) − η·mean_grad with sgn(0) = 0
  (`add_l1_subgradient`; optax has no twin).
- Momentum (ch3, "momentum-based gradient descent"):  v → μv − η∇C,  w → w + v.
  optax.sgd(η, momentum=μ) runs m → g + μm, w → w − ηm. With a constant η the two agree
  (v = −ηm), but when η changes (the η schedule) optax rescales the whole accumulated
  velocity by the new η, while the book's v keeps the η it was built with. So here the
  gradient is scaled by −η *before* ``optax.trace``: the trace then is the book's v.

η, λ and μ are injected hyperparameters (``optax.inject_hyperparams``): they live in the
optimiser state, so a schedule can change η between epochs without recompiling and a
sweep can vmap over arrays of them (`set_hyperparams`).
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nnjax import validate

Params = Any
SCALINGS = ("network2", "network3")


def weight_mask(params: Params) -> Params:
    """True on every leaf except biases (leaves under a key named "b"): what L1/L2 act on."""

    def is_weight(path, leaf) -> bool:
        last = path[-1] if path else None
        return getattr(last, "key", None) != "b"

    return jax.tree_util.tree_map_with_path(is_weight, params)


def add_l1_subgradient(coefficient) -> optax.GradientTransformation:
    """g → g + c·sgn(w) with sgn(0) = 0: the gradient of c·Σ|w| (ch3, eq. 95–96).

    Unmasked: wrap it in ``optax.masked(..., weight_mask)`` to leave biases alone.
    """

    def update(updates, state, params=None):
        if params is None:
            raise ValueError("add_l1_subgradient needs the current params: call update(grads, "
                             "state, params)")
        return jax.tree_util.tree_map(lambda g, w: g + coefficient * jnp.sign(w), updates,
                                      params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def decay_per_lambda(n: int, scaling: str = "network2", batch_size: int | None = None) -> float:
    """c/λ in the per-step decay w → (1 − ηc)w: 1/n (network2.py, ch3 eq. 93) or m/n (network3.py,
    ch6)."""
    return (batch_size if scaling == "network3" else 1) / n


def sgd(eta, *, lmbda=0.0, n: int | None = None, momentum=0.0, l1: bool = False,
        scaling: str = "network2", batch_size: int | None = None) -> optax.GradientTransformation:
    """Mini-batch SGD with the book's optional L2/L1 regularisation and momentum (ch1, ch3).

    eta: the learning rate η > 0 (a float, or an array for a sweep).
    η, λ and μ must be finite and in range (`nnjax.validate`; every element of an array;
    values traced inside jit/vmap are not checked).
    lmbda: the regularisation parameter λ ≥ 0 ("lambda" is a Python keyword, as in network2.py).
    n: the training-set size. The weight-penalty term is part of the update exactly when n
        is given (so λ = 0 with n given keeps the same program, for a sweep over λ).
    momentum: μ in [0, 1); the velocity is kept exactly when μ ≠ 0 at construction.
    l1: use the L1 penalty (λ/n)Σ|w| instead of L2 (λ/2n)Σw².
    scaling: "network2" (per-step L2 decay ηλ/n) or "network3" (ηλm/n, m = batch_size).

    Updates, with g the mean gradient and c = λ/n (network2) or λm/n (network3):
        L2:  w → (1 − ηc) w − η g        L1:  w → w − ηc·sgn(w) − η g
        momentum:  v → μv − η(g + penalty gradient),  w → w + v.
    Biases get only −η g (and momentum).
    """
    validate.positive("eta", eta, "the learning rate η")
    validate.non_negative("lmbda", lmbda, "the regularisation parameter λ")
    validate.probability("momentum", momentum, "the momentum coefficient μ")
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if n is None and (l1 or np.any(np.asarray(lmbda) != 0)):
        raise ValueError("regularisation needs n, the training-set size: pass n=len(training_data)")
    if n is not None and not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive integer (the training-set size), got {n!r}")
    if scaling == "network3" and not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError("scaling='network3' needs batch_size, the mini-batch size m, got "
                         f"{batch_size!r}")
    per_lambda = None if n is None else decay_per_lambda(n, scaling, batch_size)
    use_momentum = isinstance(momentum, (jax.Array, np.ndarray)) or momentum != 0

    def book_sgd(learning_rate, lmbda, momentum):
        parts = []
        if per_lambda is not None:
            c = lmbda * per_lambda
            parts.append(optax.masked(add_l1_subgradient(c), weight_mask) if l1
                         else optax.add_decayed_weights(c, mask=weight_mask))
        parts.append(optax.scale_by_learning_rate(learning_rate))
        if use_momentum:
            parts.append(optax.trace(decay=momentum))  # after −η scaling: the trace is the book's v
        return optax.chain(*parts)

    return optax.inject_hyperparams(book_sgd)(learning_rate=eta, lmbda=lmbda, momentum=momentum)


def set_hyperparams(opt_state, **values):
    """A copy of an `sgd` state with hyperparameters replaced, e.g. ``learning_rate=η/2``.

    Names: learning_rate (η), lmbda (λ), momentum (μ). Values keep the stored dtype.
    """
    hp = dict(opt_state.hyperparams)
    unknown = sorted(set(values) - set(hp))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown}; this optimiser has {sorted(hp)}")
    for k, v in values.items():
        hp[k] = jnp.asarray(v, dtype=hp[k].dtype)
    return opt_state._replace(hyperparams=hp)


def _weights(params: Params) -> list[jax.Array]:
    leaves, keep = jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(weight_mask(params))
    return [leaf for leaf, k in zip(leaves, keep) if k]


def l2_penalty(params: Params, lmbda, n) -> jax.Array:
    """(λ/2n) Σ_w w², weights only: the term network2.py adds to a reported cost (ch3, eq. 85)."""
    return 0.5 * lmbda / n * sum(jnp.sum(w**2) for w in _weights(params))


def l1_penalty(params: Params, lmbda, n) -> jax.Array:
    """(λ/n) Σ_w |w|, weights only: the L1 term of a reported cost (ch3, eq. 95)."""
    return lmbda / n * sum(jnp.sum(jnp.abs(w)) for w in _weights(params))
