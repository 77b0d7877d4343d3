"""Neuron activation functions, each written beside its derivative.

Chapter 1 introduces the sigmoid neuron σ(z) = 1/(1 + e^{−z}); chapter 3 adds tanh,
rectified linear units and the softmax output layer; chapter 2's backpropagation needs
σ′(z) for whichever σ a layer uses (BP1, BP2). Each `Activation` bundles a function with
its derivative so the hand-derived backprop (`nnjax.backprop`) can use any of them.

All functions act elementwise on arrays of any shape, except softmax, which normalises
over the last axis.
"""

import functools
import re
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Activation(NamedTuple):
    """A neuron's activation σ and its derivative σ′, both elementwise in z."""

    name: str
    fn: Callable[[Array], Array]
    prime: Callable[[Array], Array]


def sigmoid(z: Array) -> Array:
    """σ(z) = 1 / (1 + e^{−z}) (ch1, eq. 3). Written as jax.nn.sigmoid for stability."""
    return jax.nn.sigmoid(z)


def sigmoid_prime(z: Array) -> Array:
    """σ′(z) = σ(z)(1 − σ(z)) (ch2; used in BP1 and BP2)."""
    s = jax.nn.sigmoid(z)
    return s * (1.0 - s)


def tanh(z: Array) -> Array:
    """tanh(z) = 2σ(2z) − 1 (ch3, "other models of artificial neuron")."""
    return jnp.tanh(z)


def tanh_prime(z: Array) -> Array:
    """tanh′(z) = 1 − tanh²(z)."""
    return 1.0 - jnp.tanh(z) ** 2


def relu(z: Array) -> Array:
    """Rectified linear unit max(0, z) (ch3, ch6)."""
    return jnp.maximum(z, 0.0)


def relu_prime(z: Array) -> Array:
    """ReLU′(z) = 1 for z > 0, else 0 (the subgradient 0 is taken at z = 0, as jax.grad does)."""
    return (z > 0).astype(z.dtype)


def linear(z: Array) -> Array:
    """The identity a = z (ch3: a linear output layer with the quadratic cost)."""
    return z


def linear_prime(z: Array) -> Array:
    """d/dz z = 1."""
    return jnp.ones_like(z)


def softmax(z: Array, temperature: float = 1.0) -> Array:
    """Softmax a_j = e^{z_j/c} / Σ_k e^{z_k/c} over the last axis (ch3, eq. 78; c the temperature).

    Its Jacobian is not diagonal, so it has no elementwise σ′: paired with the
    log-likelihood cost its output error is simply δ^L = a^L − y (ch3, eq. 84), which
    `nnjax.costs.log_likelihood` supplies. With temperature c the error is (a − y)/c.
    """
    return jax.nn.softmax(z / temperature, axis=-1)


def _no_elementwise_prime(z: Array) -> Array:
    raise TypeError(
        "softmax has no elementwise derivative; use it only as the output layer with the "
        "log-likelihood cost (nnjax.costs.log_likelihood), whose δ^L = a − y needs none"
    )


SIGMOID = Activation("sigmoid", sigmoid, sigmoid_prime)
TANH = Activation("tanh", tanh, tanh_prime)
RELU = Activation("relu", relu, relu_prime)
LINEAR = Activation("linear", linear, linear_prime)
SOFTMAX = Activation("softmax", softmax, _no_elementwise_prime)

BY_NAME = {a.name: a for a in (SIGMOID, TANH, RELU, LINEAR, SOFTMAX)}

_TEMPERATURE = re.compile(r"^(\w+)\(c=([^)]+)\)$")


def parse_temperature(name: str) -> tuple[str, float]:
    """Split a name like "softmax(c=2.0)" into ("softmax", 2.0); a plain name has c = 1."""
    m = _TEMPERATURE.match(name)
    if not m:
        return name, 1.0
    try:
        return m.group(1), float(m.group(2))
    except ValueError:
        msg = f"bad temperature in {name!r}: write it as e.g. 'softmax(c=2.0)'"
        raise ValueError(msg) from None


def check_temperature(c: float) -> float:
    if not (isinstance(c, (int, float)) and c > 0):
        raise ValueError(f"the softmax temperature c must be a positive number, got {c!r}")
    return float(c)


@functools.cache  # one object per c: equal networks stay equal (jit static args)
def softmax_at(c: float) -> Activation:
    """The softmax output layer at temperature c, a_j = e^{z_j/c} / Σ_k e^{z_k/c} (ch3, problem).

    Its name, "softmax(c=…)", ties it to the matching cost `nnjax.costs.log_likelihood_at`,
    whose δ^L = (a − y)/c. c = 1 gives `SOFTMAX` itself; c → ∞ flattens the output towards
    uniform, c → 0 towards the one-hot argmax ("hard max").
    """
    c = check_temperature(c)
    if c == 1.0:
        return SOFTMAX
    return Activation(f"softmax(c={c})", lambda z: softmax(z, c), _no_elementwise_prime)


def get(name: str) -> Activation:
    """Look up an activation by name ("sigmoid", "tanh", "relu", "linear", "softmax",
    "softmax(c=2.0)")."""
    base, c = parse_temperature(name)
    if base == "softmax":
        return softmax_at(c)
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(BY_NAME)} "
                         "or 'softmax(c=<temperature>)'") from None
