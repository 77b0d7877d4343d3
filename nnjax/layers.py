"""Layers as pure (init, apply) pairs, composed with `serial` (ch6, network3.py's layers).

Every constructor returns a `Layer(init, apply)` in the style of stax:

    init(key, in_shape) -> (out_shape, params)     shapes of ONE example, no batch axis
    apply(params, x, key=None) -> y                x of shape (m, *in_shape)

``key`` is given only in training, and only `Dropout` uses it: ``key=None`` is the
evaluation pass. Images are NHWC, (28, 28, 1) for MNIST. Layers without parameters
have ``params == ()``. Parameters are plain dicts: dense and softmax ``{"w": (n_out,
n_in), "b": (n_out,)}`` (the book's layout, as `nnjax.init`), conv ``{"w": (k, k, C, F),
"b": (F,)}``.

network3.py's ConvPoolLayer is ``serial(Conv(F), MaxPool(2), Activation(σ))``: it pools
the convolution's output and then applies σ; the bias, a constant per feature map, and a
non-decreasing σ both commute with the max, so this equals σ applied before pooling while
doing a quarter of the elementwise work. Its SoftmaxLayer is `Softmax`, whose apply
returns the weighted input z^L; a^L = softmax(z^L) is taken by the log-likelihood cost
(stably, through log-softmax, `nnjax.costs`) and by `nnjax.convnet.probabilities`.
"""

import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from nnjax import activations, conv, init

Array = jax.Array
Shape = tuple[int, ...]


class Layer(NamedTuple):
    """A layer as two pure functions: ``init(key, in_shape)`` and ``apply(params, x, key=None)``."""

    init: Callable[[Array, Shape], tuple[Shape, Any]]
    apply: Callable[..., Array]


def _flat(name: str, in_shape: Shape) -> int:
    if len(in_shape) != 1:
        raise ValueError(f"{name} expects flat inputs of shape (n_in,), got {in_shape}; put Flatten() before it")
    return in_shape[0]


def dense(params, x: Array) -> Array:
    """z = w a + b for each row a of x (ch1, eq. 22): rows are examples, so x wᵀ + b."""
    return x @ params["w"].T + params["b"][None, :]


def convolve(params, x: Array, impl: str = "auto") -> Array:
    """z = w ⋆ a + b for NHWC images x (ch6, eq. 125), one bias per feature map."""
    return conv.conv2d(x, params["w"], impl) + params["b"][None, None, None, :]


def Dense(n_out: int, init_name: str = "network3") -> Layer:
    """A fully connected layer's weighted input z = w a + b (ch1, eq. 22), W of shape (n_out, n_in).

    init_name: an `nnjax.init` initialiser: "network3" (W ~ N(0, 1/n_out), as network3.py),
    "default" (W ~ N(0, 1/n_in), what the book says it meant), "large" or "zeros".
    """
    layer_init = init.get(init_name)

    def init_fn(key, in_shape):
        return (n_out,), layer_init(key, _flat("Dense", in_shape), n_out)

    return Layer(init_fn, lambda params, x, key=None: dense(params, x))


def Softmax(n_out: int, init_name: str = "zeros") -> Layer:
    """network3's softmax output layer: returns z^L = w a + b; a^L = softmax(z^L) (ch3, eq. 78).

    network3.py starts its W and b at zero ("zeros"); any `nnjax.init` name may be given.
    """
    return Dense(n_out, init_name)


def conv_weight_std(init_name: str, k: int, c_in: int, filters: int, pool: int) -> float:
    """Standard deviation of a conv layer's initial weights.

    "network3": N(0, 1/n_out) with n_out = filters·k²/pool² (network3.py's ConvPoolLayer);
    "default": N(0, 1/n_in) with n_in = k²·c_in, the fan-in of one feature-map unit.
    """
    if init_name == "network3":
        return (filters * k * k / pool**2) ** -0.5
    if init_name == "default":
        return (k * k * c_in) ** -0.5
    raise ValueError(f"unknown conv initialiser {init_name!r}; choose 'network3' or 'default'")


def Conv(filters: int, k: int = 5, init_name: str = "network3", pool: int = 2, impl: str = "auto") -> Layer:
    """A convolutional layer: ``filters`` feature maps of k×k shared weights and one bias each (ch6).

    z[n, i, j, f] = b_f + Σ_{p,q,c} w[p, q, c, f] x[n, i+p, j+q, c]  (ch6, eq. 125; valid, stride 1).
    pool: the size of the max-pooling that follows, which only network3's initialisation uses.
    impl: "auto", "im2col" or "lax" (see `nnjax.conv`). Biases start N(0, 1) as in network3.py.
    """
    conv.resolve_impl(impl)
    conv_weight_std(init_name, k, 1, filters, pool)

    def init_fn(key, in_shape):
        if len(in_shape) != 3:
            raise ValueError(f"Conv expects images of shape (H, W, C), got {in_shape}")
        h, w, c = in_shape
        conv.check_conv_shapes((1, *in_shape), (k, k, c, filters))
        kw, kb = jax.random.split(key)
        std = conv_weight_std(init_name, k, c, filters, pool)
        params = {"w": std * jax.random.normal(kw, (k, k, c, filters), jnp.float32),
                  "b": jax.random.normal(kb, (filters,), jnp.float32)}
        return (h - k + 1, w - k + 1, filters), params

    return Layer(init_fn, lambda params, x, key=None: convolve(params, x, impl))


def MaxPool(size: int = 2) -> Layer:
    """Max-pooling over size×size regions (ch6, "pooling layers")."""

    def init_fn(key, in_shape):
        if len(in_shape) != 3 or in_shape[0] % size or in_shape[1] % size:
            raise ValueError(f"MaxPool({size}) needs an (H, W, C) map with H and W divisible by {size}, got {in_shape}")
        h, w, c = in_shape
        return (h // size, w // size, c), ()

    def apply(params, x, key=None):
        return conv.max_pool(x, size)

    return Layer(init_fn, apply)


def Activation(name: str) -> Layer:
    """Elementwise a = σ(z) for σ in "sigmoid", "tanh", "relu", "linear" (`nnjax.activations`)."""
    if name == "softmax":
        raise ValueError("use the Softmax output layer, not Activation('softmax')")
    fn = activations.get(name).fn
    return Layer(lambda key, in_shape: (in_shape, ()), lambda params, x, key=None: fn(x))


def Flatten() -> Layer:
    """Reshape each example to a vector (row-major over H, W, C)."""

    return Layer(lambda key, in_shape: ((math.prod(in_shape),), ()),
                 lambda params, x, key=None: x.reshape(x.shape[0], -1))


def Dropout(p: float, mode: str = "network3") -> Layer:
    """Drop each input unit with probability p during training (ch3 "dropout"; ch6).

    mode "network3": training multiplies by a Bernoulli(1 − p) mask and nothing else; the
    evaluation pass scales by (1 − p) instead (network3.py scales the next layer's
    weights, which is the same for the linear layer that follows).
    mode "inverted": training multiplies by mask/(1 − p); evaluation is the identity.
    """
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout probability p must be in [0, 1), got {p!r}")
    if mode not in ("network3", "inverted"):
        raise ValueError(f"unknown dropout mode {mode!r}; choose 'network3' or 'inverted'")

    def apply(params, x, key=None):
        if key is None:
            return x * (1.0 - p) if mode == "network3" else x
        keep = jax.random.bernoulli(key, 1.0 - p, x.shape).astype(x.dtype)
        return x * keep if mode == "network3" else x * keep / (1.0 - p)

    return Layer(lambda key, in_shape: (in_shape, ()), apply)


def serial(*layers: Layer) -> Layer:
    """Compose layers in order into one `Layer`; params is a tuple with one entry per layer."""

    def init_fn(key, in_shape):
        params = []
        for layer, k in zip(layers, jax.random.split(key, len(layers))):
            in_shape, p = layer.init(k, tuple(in_shape))
            params.append(p)
        return in_shape, tuple(params)

    def apply(params, x, key=None):
        if len(params) != len(layers):
            raise ValueError(f"params holds {len(params)} layers, the network has {len(layers)}")
        keys = [None] * len(layers) if key is None else jax.random.split(key, len(layers))
        for layer, p, k in zip(layers, params, keys):
            x = layer.apply(p, x, k)
        return x

    return Layer(init_fn, apply)
