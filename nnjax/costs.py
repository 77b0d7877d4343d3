"""Cost functions for one training example, each written beside its output error δ^L.

Chapter 1 trains with the quadratic cost C_x = ½‖y − a^L‖²; chapter 3 replaces it with
the cross-entropy (sigmoid outputs, eq. 63) and the log-likelihood (softmax outputs,
eq. 80). Each `Cost` carries:

- ``fn(z, a, y)``: the cost C_x of one example, from the output layer's weighted input
  z = z^L, its activation a = a^L and the target vector y (one-hot for a label);
- ``delta(z, a, y, activation)``: δ^L = ∂C_x/∂z^L (BP1, ch2), written out by hand.

z is passed so that the cross-entropy and log-likelihood are evaluated stably from it.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from nnjax import activations
from nnjax.activations import Activation

Array = jax.Array


class Cost(NamedTuple):
    """A per-example cost C_x and its hand-derived output error δ^L (BP1)."""

    name: str
    fn: Callable[[Array, Array, Array], Array]
    delta: Callable[[Array, Array, Array, Activation], Array]
    output: str | None  # the output activation it is defined for; None: any elementwise one


def quadratic_fn(z: Array, a: Array, y: Array) -> Array:
    """C_x = ½‖y − a^L‖² (ch1, eq. 6, for one example)."""
    return 0.5 * jnp.sum((a - y) ** 2)


def quadratic_delta(z: Array, a: Array, y: Array, activation: Activation) -> Array:
    """BP1 for the quadratic cost: δ^L = (a^L − y) ⊙ σ′(z^L) (ch2, eq. 30)."""
    return (a - y) * activation.prime(z)


def cross_entropy_fn(z: Array, a: Array, y: Array) -> Array:
    """C_x = −Σ_j [y_j ln a_j + (1 − y_j) ln(1 − a_j)] with a = σ(z) (ch3, eq. 63).

    Evaluated as Σ_j [softplus(z_j) − y_j z_j], the same quantity written in z, which is
    finite even where σ(z) rounds to exactly 0 or 1.
    """
    return jnp.sum(jax.nn.softplus(z) - y * z)


def cross_entropy_delta(z: Array, a: Array, y: Array, activation: Activation) -> Array:
    """BP1 for cross-entropy with sigmoid outputs: δ^L = a^L − y (ch3, eq. 66).

    The σ′(z^L) factor of the quadratic cost cancels, which is why a saturated output
    neuron still learns quickly.
    """
    return a - y


def log_likelihood_fn(z: Array, a: Array, y: Array) -> Array:
    """C_x = −ln a^L_y for a softmax output layer (ch3, eq. 80), as −Σ_j y_j log_softmax(z)_j."""
    return -jnp.sum(y * jax.nn.log_softmax(z))


def log_likelihood_delta(z: Array, a: Array, y: Array, activation: Activation) -> Array:
    """BP1 for softmax with log-likelihood: δ^L = a^L − y (ch3, eq. 84)."""
    return a - y


QUADRATIC = Cost("quadratic", quadratic_fn, quadratic_delta, None)
CROSS_ENTROPY = Cost("cross_entropy", cross_entropy_fn, cross_entropy_delta, "sigmoid")
LOG_LIKELIHOOD = Cost("log_likelihood", log_likelihood_fn, log_likelihood_delta, "softmax")

BY_NAME = {c.name: c for c in (QUADRATIC, CROSS_ENTROPY, LOG_LIKELIHOOD)}


@functools.cache  # one object per c, as activations.softmax_at
def log_likelihood_at(c: float) -> Cost:
    """The log-likelihood of a softmax output at temperature c (ch3, problem on softmax).

    C_x = −ln a^L_y with a^L = softmax(z^L/c), evaluated as −log_softmax(z/c)_y.
    BP1: ∂C_x/∂z_j = (a_j − y_j)/c, the c = 1 error scaled by the chain rule's 1/c.
    Pairs only with `nnjax.activations.softmax_at(c)`; c = 1 gives `LOG_LIKELIHOOD`.
    """
    c = activations.check_temperature(c)
    if c == 1.0:
        return LOG_LIKELIHOOD
    return Cost(
        f"log_likelihood(c={c})",
        lambda z, a, y: log_likelihood_fn(z / c, a, y),
        lambda z, a, y, activation: (a - y) / c,
        activations.softmax_at(c).name,
    )


def get(name: str) -> Cost:
    """Look up a cost by name ("quadratic", "cross_entropy", "log_likelihood",
    "log_likelihood(c=2.0)")."""
    base, c = activations.parse_temperature(name)
    if base == "log_likelihood":
        return log_likelihood_at(c)
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown cost {name!r}; choose one of {sorted(BY_NAME)} "
                         "or 'log_likelihood(c=<temperature>)'") from None
