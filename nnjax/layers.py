"""Every layer of the book, its forward rule beside its hand-derived backward rule (ch2, ch6).

A `Layer` holds three pure functions (shapes of ONE example, batches x of shape (m, ...)):

    init(key, in_shape) -> (out_shape, params)
    forward(params, x, key) -> (y, cache)          key: dropout's, None when evaluating
    backward(params, cache, δ) -> (∂C/∂params, δ_in)   δ = ∂C/∂y, δ_in = ∂C/∂x, summed over x

`serial` composes layers into a network, itself a `Layer`; `backprop` runs its backward
pass from BP1's δ^L. `SPECS` maps the kinds of `nnjax.convnet` architecture tuples to
layers, so a new layer is one constructor here and one entry in `SPECS` (docs/model.md).
Images are NHWC; parameter-free layers have ``params == ()``; dense params are
``{"w": (n_out, n_in), "b": (n_out,)}`` (the book's layout), conv ``{"w": (k, k, C, F), "b":
(F,)}``.
"""

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from nnjax import activations, conv, init

Array = jax.Array
Shape = tuple[int, ...]
DROPOUT_MODES = ("network3", "inverted")


class Layer(NamedTuple):
    """A layer's ``init``, ``forward`` and ``backward`` rules (see the module docstring)."""

    init: Callable[[Array, Shape], tuple[Shape, Any]]
    forward: Callable[[Any, Array, Any], tuple[Array, Any]]
    backward: Callable[[Any, Any, Array], tuple[Any, Array]]
    has_params: bool = False

    def apply(self, params, x: Array, key=None) -> Array:
        """The layer's output y for a batch x (evaluation pass when key is None)."""
        return self.forward(params, x, key)[0]


def _same_shape(key, in_shape):
    return in_shape, ()


def _flat(name: str, in_shape: Shape) -> int:
    if len(in_shape) != 1:
        raise ValueError(f"{name} expects flat inputs of shape (n_in,), got {in_shape}; put "
                         "Flatten() before it")
    return in_shape[0]


def dense(params, x: Array) -> Array:
    """z = w a + b for x of shape (n_in,), or x wᵀ + b for a batch, one example a per row (ch1, eq.
    22)."""
    return x @ params["w"].T + params["b"][(None,) * (x.ndim - 1)]


def dense_backward(params, a: Array, delta: Array):
    """BP4 ∂C/∂w = Σ_x δ aᵀ, BP3 ∂C/∂b = Σ_x δ, and BP2's (w)ᵀ δ, row by row (ch2, eqs. BP2–BP4)."""
    return {"w": delta.T @ a, "b": jnp.sum(delta, axis=0)}, delta @ params["w"]


def Dense(n_out: int, init_name: str = "network3") -> Layer:
    """A fully connected layer's weighted input z = w a + b (ch1, eq. 22); W of shape (n_out, n_in).

    init_name: an `nnjax.init` initialiser: "network3" (W ~ N(0, 1/n_out), as network3.py),
    "default" (W ~ N(0, 1/n_in)), "large" or "zeros".
    """
    layer_init = init.get(init_name)

    def init_fn(key, in_shape):
        return (n_out,), layer_init(key, _flat("Dense", in_shape), n_out)

    return Layer(init_fn, lambda p, x, key: (dense(p, x), x), dense_backward, True)


def Softmax(n_out: int, init_name: str = "zeros") -> Layer:
    """network3's softmax output layer: returns z^L = w a + b; a^L = softmax(z^L) is the cost's
    (ch3, eq. 78)."""
    return Dense(n_out, init_name)


def convolve(params, x: Array, impl: str = "auto") -> Array:
    """z = w ⋆ a + b for NHWC images x (ch6, eq. 125), one bias per feature map."""
    return conv.conv2d(x, params["w"], impl) + params["b"][None, None, None, :]


def conv_backward(a: Array, w: Array, delta: Array,
                  impl: str = "im2col") -> tuple[Array, Array, Array]:
    """(∂C/∂w, ∂C/∂b, ∂C/∂a) of a valid conv layer, input a (m, H, W, C), δ (m, H′, W′, F) (ch6,
    problem).

    BP4c ∂C/∂w[p,q,c,f] = Σ a[i+p, j+q, c] δ[i,j,f] (patches(a)ᵀ δ); BP3c ∂C/∂b_f = Σ δ[i,j,f];
    BP2c ∂C/∂a = δ zero-padded by k−1, convolved with w rotated 180° and its channel axes swapped.
    """
    k, _, c, f = w.shape
    nabla_w = (conv.patches(a, k).reshape(-1, k * k * c).T @ delta.reshape(-1, f)).reshape(w.shape)
    nabla_b = jnp.sum(delta, axis=(0, 1, 2))
    padded = jnp.pad(delta, ((0, 0), (k - 1, k - 1), (k - 1, k - 1), (0, 0)))
    return nabla_w, nabla_b, conv.conv2d(padded, jnp.flip(w, axis=(0, 1)).transpose(0, 1, 3, 2),
                                         impl)


def conv_weight_std(init_name: str, k: int, c_in: int, filters: int, pool: int) -> float:
    """Initial weight std: "network3" 1/√(F·k²/pool²) (network3.py), "default" 1/√(k²·C) (ch3,
    fan-in)."""
    if init_name == "network3":
        return (filters * k * k / pool**2) ** -0.5
    if init_name == "default":
        return (k * k * c_in) ** -0.5
    raise ValueError(f"unknown conv initialiser {init_name!r}; choose 'network3' or 'default'")


def Conv(filters: int, k: int = 5, init_name: str = "network3", pool: int = 2,
         impl: str = "auto") -> Layer:
    """``filters`` feature maps of k×k shared weights, one bias each (ch6, eq. 125; valid, stride
    1).

    pool: the max-pooling that follows (network3's initialisation only); impl: "auto",
    "im2col" or "lax" (`nnjax.conv`). Biases start N(0, 1) as in network3.py.
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

    def backward(p, a, delta):
        nabla_w, nabla_b, delta_a = conv_backward(a, p["w"], delta, impl)
        return {"w": nabla_w, "b": nabla_b}, delta_a

    return Layer(init_fn, lambda p, x, key: (convolve(p, x, impl), x), backward, True)


def max_pool_backward(z: Array, delta: Array, size: int = 2) -> Array:
    """BP2p ∂C/∂z[unit] = δ[region] for the region's maximum, the first in row-major order on ties
    (ch6)."""
    m, h, w, c = z.shape
    regions = z.reshape(m, h // size, size, w // size, size, c)
    is_max = regions == conv.max_pool(z, size)[:, :, None, :, None, :]
    taken = jnp.zeros_like(is_max[:, :, 0, :, 0, :])
    rows = []
    for p in range(size):  # walk each region in row-major order; the first maximum takes δ
        cols = []
        for q in range(size):
            first = is_max[:, :, p, :, q, :] & ~taken
            taken = taken | first
            cols.append(first)
        rows.append(jnp.stack(cols, axis=3))
    mask = jnp.stack(rows, axis=2)
    return (mask * delta[:, :, None, :, None, :]).reshape(z.shape)


def MaxPool(size: int = 2) -> Layer:
    """Max-pooling over size×size regions (ch6, "pooling layers"); backward BP2p."""

    def init_fn(key, in_shape):
        if len(in_shape) != 3 or in_shape[0] % size or in_shape[1] % size:
            raise ValueError(f"MaxPool({size}) needs an (H, W, C) map with H and W divisible by "
                             f"{size}, got {in_shape}")
        h, w, c = in_shape
        return (h // size, w // size, c), ()

    return Layer(init_fn, lambda p, x, key: (conv.max_pool(x, size), x),
                 lambda p, z, delta: ((), max_pool_backward(z, delta, size)))


def Activation(name) -> Layer:
    """a = σ(z) elementwise (ch1, eq. 3); backward δ ⊙ σ′(z), BP2's second factor (ch2).

    name: "sigmoid", "tanh", "relu", "linear" or an `nnjax.activations.Activation`.
    """
    if name == "softmax":
        raise ValueError("use the Softmax output layer, not Activation('softmax')")
    sigma = name if isinstance(name, activations.Activation) else activations.get(name)
    return Layer(_same_shape, lambda p, z, key: (sigma.fn(z), z),
                 lambda p, z, delta: ((), delta * sigma.prime(z)))


def Flatten() -> Layer:
    """Reshape each example to a vector (row-major over H, W, C); backward reshapes δ back."""
    return Layer(lambda key, in_shape: ((math.prod(in_shape),), ()),
                 lambda p, x, key: (x.reshape(x.shape[0], -1), x.shape),
                 lambda p, shape, delta: ((), delta.reshape(shape)))


def check_p(p) -> float:
    """The dropout probability p must lie in [0, 1): p = 1 would drop every unit."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"the dropout probability p must be a number in [0, 1), got {p!r}")
    return float(p)


def Dropout(p: float, mode: str = "network3") -> Layer:
    """Drop each unit with probability p while training (ch3, "dropout"; ch6).

    Training (a key): y = mask ⊙ x ("network3") or mask ⊙ x/(1 − p) ("inverted"), mask ~
    Bernoulli(1 − p); evaluation (no key): y = (1 − p)x (network3.py scales the weights
    the units feed, the same for the linear layer that follows) or y = x.
    Backward: δ through the same mask and scale.
    """
    check_p(p)
    if mode not in DROPOUT_MODES:
        raise ValueError(f"unknown dropout mode {mode!r}; choose 'network3' or 'inverted'")

    def thin(x, keep):  # training: mask ⊙ x, or mask ⊙ x/(1 − p)
        return jnp.where(keep, x if mode == "network3" else x / (1.0 - p), 0.0)

    def full(x):  # evaluation: (1 − p)x, or x
        return x * (1.0 - p) if mode == "network3" else x

    def forward(params, x, key):
        if key is None:
            return full(x), None
        keep = jax.random.bernoulli(key, 1.0 - p, x.shape)
        return thin(x, keep), keep

    def backward(params, keep, delta):
        return (), full(delta) if keep is None else thin(delta, keep)

    return Layer(_same_shape, forward, backward)


def serial(*layers: Layer, packed: bool = False) -> Layer:
    """Compose layers in order into one `Layer`, whose backward runs theirs in reverse (ch2).

    params: one entry per layer; ``packed``: one per layer with parameters (a fully
    connected net's tuple of dense dicts), and each layer draws the key of the
    parametrised layer it precedes (so dropout before layer l gets key l).
    """
    owner = [min(sum(l.has_params for l in layers[:i]), sum(l.has_params for l in layers) - 1)
             if packed else i for i in range(len(layers))]

    def spread(params):
        if len(params) != max(owner, default=-1) + 1:
            raise ValueError(f"params holds {len(params)} layers, the network has "
                             f"{max(owner, default=-1) + 1}")
        return [params[owner[i]] if l.has_params or not packed else () for i,
                l in enumerate(layers)]

    def init_fn(key, in_shape):
        params = []
        for layer, k in zip(layers, jax.random.split(key, len(layers))):
            in_shape, p = layer.init(k, tuple(in_shape))
            params.append(p)
        return in_shape, tuple(p for p, l in zip(params, layers) if l.has_params or not packed)

    def forward(params, x, key):
        count = max(owner) + 1
        keys = [None] * count if key is None else list(jax.random.split(key, count))
        caches = []
        for layer, p, i in zip(layers, spread(params), owner):
            x, cache = layer.forward(p, x, keys[i])
            caches.append(cache)
        return x, caches

    def backward(params, caches, delta):
        grads = []
        for layer, p, cache in reversed(list(zip(layers, spread(params), caches))):
            g, delta = layer.backward(p, cache, delta)
            grads.append(g)
        return tuple(g for g, l in zip(reversed(grads), layers) if l.has_params
                     or not packed), delta

    return Layer(init_fn, forward, backward, any(l.has_params for l in layers))


def backprop(net: Layer, params, x: Array, bp1: Callable[[Array], Array], key=None):
    """Σ_x ∇C_x over a mini-batch by hand: the forward pass, BP1's δ^L = bp1(z^L), then BP2–BP4
    layer by layer (ch2)."""
    z, caches = net.forward(params, x, key)
    return net.backward(params, caches, bp1(z))[0]


SPECS: dict[str, Callable[..., Layer]] = {  # architecture kind → layer; o: build's options
    "conv": lambda filters, **o: Conv(filters, 5, o["init"], o["pool"], o["conv_impl"]),
    "pool": lambda size, **o: MaxPool(size),
    "act": lambda name, **o: Activation(name),
    "flatten": lambda **o: Flatten(),
    "dense": lambda n, **o: Dense(n, o["init"]),
    "dropout": lambda p, **o: Dropout(p, o["dropout_mode"]),
    "softmax": lambda n, **o: Softmax(n),
}
