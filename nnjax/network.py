"""Fully connected feedforward networks over a plain parameter pytree (ch1–ch3).

A network's *structure* is a `Network` (layer sizes, hidden and output activations,
cost): a frozen, hashable value that jit treats as static. Its *parameters* are a tuple
with one ``{"w": (n_out, n_in), "b": (n_out,)}`` dict per layer (see `nnjax.init`).

The network is a list of `nnjax.layers` (`model`): a^l = σ(w^l a^{l−1} + b^l) (ch1,
eq. 22) for one example x of shape (n_in,) or a batch (m, n_in), one example per row.
Labels are integers; `targets` turns them into the one-hot vectors y(x) that the costs
compare against (real-valued targets, e.g. for regression, pass through unchanged).
"""

import functools
from dataclasses import dataclass
from functools import partial
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from nnjax import activations, costs, layers, validate
from nnjax.activations import Activation
from nnjax.costs import Cost

Array = jax.Array
Params = tuple[dict[str, Array], ...]


@dataclass(frozen=True)
class Network:
    """The structure of a fully connected network.

    sizes: neurons per layer, input first (ch1's ``sizes``, e.g. (784, 30, 10)).
    activation: σ of every hidden layer.
    output: σ of the output layer.
    cost: the per-example cost C_x minimised in training.
    """

    sizes: tuple[int, ...]
    activation: Activation = activations.SIGMOID
    output: Activation = activations.SIGMOID
    cost: Cost = costs.QUADRATIC

    def __post_init__(self):
        sizes = tuple(self.sizes) if isinstance(self.sizes, (tuple, list)) else ()
        if len(sizes) < 2 or any(isinstance(n, bool) or not isinstance(n, int) or n < 1
                                 for n in sizes):
            raise ValueError(
                f"Network sizes must be at least two positive integers (input, ..., output), "
                f"got {self.sizes!r}"
            )
        object.__setattr__(self, "sizes", sizes)
        for field, kind, module in (("activation", Activation, "activations"), ("output",
            Activation, "activations"),
                                    ("cost", Cost, "costs")):
            value = getattr(self, field)
            if not isinstance(value, kind):
                raise TypeError(f"Network {field} must be a {kind.__name__} such as "
                                f"{module}.get(name), got {type(value).__name__} {value!r}")
        if self.activation.name.startswith("softmax"):
            raise ValueError("softmax can only be the output layer, not the hidden activation: "
                             "use output=activations.SOFTMAX")
        if self.cost.output is not None and self.cost.output != self.output.name:
            raise ValueError(
                f"the {self.cost.name} cost is defined for a {self.cost.output} output layer, "
                f"but this network's output is {self.output.name}: pass output="
                f"activations.get({self.cost.output!r}) or choose another cost"
            )
        if self.output.name.startswith("softmax") and not self.cost.name.startswith(
            "log_likelihood"):
            raise ValueError(
                "a softmax output layer pairs with the log_likelihood cost (ch3); "
                f"got cost {self.cost.name!r}"
            )


def targets(y: Array, n_out: int) -> Array:
    """The desired outputs y(x): one-hot vectors for integer labels (ch1), else y itself."""
    y = jnp.asarray(y)
    if jnp.issubdtype(y.dtype, jnp.integer):
        return jax.nn.one_hot(y, n_out, dtype=jnp.float32)
    return y


@functools.cache
def model(net: Network, p: float = 0.0, dropout_mode: str = "network3") -> layers.Layer:
    """The network as a layer list: Dense, σ, ..., Dense, whose output is z^L (ch1, eq. 22, layer by
    layer).

    The output activation a^L = σ_L(z^L) is taken with the cost. p > 0 puts a
    `nnjax.layers.Dropout` on the inputs of every layer after the first (ch3, "dropout").
    Its params are the network's: one ``{"w", "b"}`` dict per dense layer.
    """
    parts = []
    for l, n in enumerate(net.sizes[1:]):
        parts += [layers.Dropout(p, dropout_mode)] * (l > 0 and p > 0) + [layers.Dense(n, "zeros")]
        parts += [layers.Activation(net.activation)] * (l < len(net.sizes) - 2)
    return layers.serial(*parts, packed=True)


def weighted_output(params: Params, x: Array, net: Network, key: Array | None = None,
                    p: float = 0.0, dropout_mode: str = "network3") -> Array:
    """z^L for x of shape (n_in,) or a batch (m, n_in); with a key, through a thinned network
    (ch3)."""
    return model(net, p, dropout_mode).apply(params, x, key)


def output_layer(params: Params, x: Array, net: Network) -> tuple[Array, Array]:
    """z^L and a^L = σ_L(z^L) for one example x of shape (n_in,) (ch1, eq. 22 applied layer by
    layer)."""
    z = weighted_output(params, x, net)
    return z, net.output.fn(z)


def feedforward(params: Params, x: Array, net: Network) -> Array:
    """The network's output a^L for a batch x of shape (m, n_in) (ch1, ``feedforward``)."""
    _check_batch(params, x, None, net)
    return net.output.fn(weighted_output(params, x, net))


def cost(params: Params, x: Array, y: Array, net: Network, key: Array | None = None, p: float = 0.0,
         dropout_mode: str = "network3") -> Array:
    """Mean cost C = (1/m) Σ_x C_x over a batch (ch1, eq. 6; ch3, eq. 63/80). No penalty term.

    With a key and p > 0, through a network thinned by dropout (`nnjax.dropout`).
    """
    _check_batch(params, x, y, net)
    z = weighted_output(params, x, net, key, p, dropout_mode)
    return jnp.mean(jax.vmap(net.cost.fn)(z, net.output.fn(z), targets(y, net.sizes[-1])))


def predict(params: Params, x: Array, net: Network) -> Array:
    """The digit the network picks for each row of x: argmax_j a^L_j (ch1, ``evaluate``)."""
    return jnp.argmax(feedforward(params, x, net), axis=-1)


def accuracy(params: Params, x: Array, y: Array, net: Network) -> Array:
    """Number of rows of x whose prediction equals the integer label y (ch1's score)."""
    _check_batch(params, x, y, net)
    return jnp.sum(predict(params, x, net) == y)


@partial(jax.jit, static_argnames="net")
def evaluate(params: Params, x: Array, y: Array, net: Network) -> tuple[Array, Array]:
    """(number correct, mean cost) over a labelled set, in one compiled pass."""
    _check_batch(params, x, y, net)
    z = weighted_output(params, x, net)
    a = net.output.fn(z)
    return jnp.sum(jnp.argmax(a, axis=-1) == y), jnp.mean(jax.vmap(net.cost.fn)(z, a,
        targets(y, net.sizes[-1])))


def num_params(params: Any) -> int:
    """Total number of weights and biases ([784, 30, 10] has 23,860)."""
    return sum(int(leaf.size) for leaf in jax.tree_util.tree_leaves(params))


def check_params(params: Params, net: Network) -> None:
    """Raise a clear ValueError if ``params`` does not fit ``net``'s layer sizes."""
    if not isinstance(params, (tuple, list)) or len(params) != len(net.sizes) - 1:
        raise ValueError(
            f"params must hold {len(net.sizes) - 1} layers for sizes {net.sizes}, "
            f"got {type(params).__name__} of length "
            f"{len(params) if hasattr(params, '__len__') else '?'}"
        )
    for l, (layer, n_in, n_out) in enumerate(zip(params, net.sizes[:-1], net.sizes[1:]), start=1):
        if not (isinstance(layer, dict) and set(layer) == {"w", "b"}):
            raise ValueError(f"params layer {l} must be a dict with keys 'w' and 'b', got "
                             f"{layer!r:.80}")
        validate.expect(f"params layer {l}: expected w of shape {(n_out, n_in)} and b of shape "
                        f"{(n_out,)}, floating point (W is (n_out, n_in) as in the book)",
                        _layer_fits, layer, (n_out, n_in))


def _layer_fits(layer: dict, w_shape: tuple[int, int]) -> None:
    """chex: one layer's w and b have the shapes ``w_shape`` and ``w_shape[:1]``, floating point."""
    chex.assert_shape([layer["w"], layer["b"]], [w_shape, w_shape[:1]])
    chex.assert_type([layer["w"], layer["b"]], float)


def _check_batch(params: Params, x: Array, y: Array | None, net: Network) -> None:
    """Shapes and dtypes only, so it also runs (once, while tracing) inside jit."""
    check_params(params, net)
    n_in, n_out = net.sizes[0], net.sizes[-1]
    validate.expect(f"x must be a floating-point batch of shape (m, {n_in}) for sizes {net.sizes}",
                    _batch_fits, x, n_in)
    x_shape = jnp.shape(x)
    if y is None:
        return
    y_shape, y_dtype = jnp.shape(y), jnp.result_type(y)
    labels = len(y_shape) == 1 and jnp.issubdtype(y_dtype, jnp.integer)
    vectors = len(y_shape) == 2 and y_shape[1] == n_out and jnp.issubdtype(y_dtype, jnp.floating)
    if not (labels or vectors) or y_shape[0] != x_shape[0]:
        raise ValueError(f"y must be ({x_shape[0]},) integer labels or ({x_shape[0]}, {n_out}) "
                         f"float targets to match x, got shape {y_shape} and dtype {y_dtype}")


def _batch_fits(x: Array, n_in: int) -> None:
    """chex: x is an (m, n_in) floating-point batch."""
    chex.assert_shape(x, (None, n_in))
    chex.assert_type(x, float)


def check_data(data: tuple[Any, Any], net: Network, name: str = "data") -> tuple[Array, Array]:
    """Check a labelled set (x, y) for ``net`` before any compute; return it as JAX arrays.

    On top of `nnjax.validate.data_pair` (shapes, dtypes, finite values): x has n_in
    columns and integer labels lie in [0, n_out), which jit cannot check (one_hot turns a
    label out of range into an all-zero target without complaint).
    """
    x, y = validate.data_pair(name, data)
    n_in, n_out = net.sizes[0], net.sizes[-1]
    if x.shape[1] != n_in:
        raise ValueError(f"{name}: x has {x.shape[1]} columns but the network's input layer "
                         f"has {n_in} neurons (sizes {net.sizes})")
    if y.ndim == 1 and (top := int(np.max(jax.device_get(y)))) >= n_out:
        raise ValueError(f"{name}: labels y must lie in [0, {n_out}) for {n_out} output neurons, "
                         f"got maximum {top}")
    if y.ndim == 2 and y.shape[1] != n_out:
        raise ValueError(f"{name}: targets y have {y.shape[1]} columns, expected {n_out} (the "
                         "output layer)")
    return x, y
