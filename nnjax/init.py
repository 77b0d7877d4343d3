"""Weight and bias initialisers for a fully connected layer (ch1, ch3, ch6).

Each initialiser maps ``(key, n_in, n_out)`` to one layer's parameters
``{"w": (n_out, n_in), "b": (n_out,)}``; W is laid out as in the book, so that
z = w a + b for a column of activations a. `init_params` builds a whole network.

- `large`: W, b ~ N(0, 1), network.py's choice (ch1); hidden neurons often saturate.
- `default`: W ~ N(0, 1/n_in), b ~ N(0, 1), network2.py's default (ch3, "weight
  initialization"): the weighted input z then has standard deviation ≈ 1 at the start.
- `network3`: W ~ N(0, 1/n_out), b ~ N(0, 1), the fully connected layers of network3.py
  (ch6; the book notes 1/n_in was intended).
- `zeros`: W = 0, b = 0, network3.py's softmax layer.
- `glorot`, `he`: beyond the book, zero biases and weights scaled so the signal keeps
  its size through tanh (Glorot & Bengio 2010) or ReLU (He et al. 2015) layers; the
  chapter-5 speed study compares them with `default`.
"""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from nnjax import validate

Array = jax.Array
Layer = dict[str, Array]
LayerInit = Callable[[Array, int, int], Layer]


def _normal_layer(key: Array, n_in: int, n_out: int, w_std: float, dtype) -> Layer:
    kw, kb = jax.random.split(key)
    return {
        "w": w_std * jax.random.normal(kw, (n_out, n_in), dtype),
        "b": jax.random.normal(kb, (n_out,), dtype),
    }


def large(key: Array, n_in: int, n_out: int, dtype=jnp.float32) -> Layer:
    """W_jk ~ N(0, 1), b_j ~ N(0, 1) (ch1, network.py)."""
    return _normal_layer(key, n_in, n_out, 1.0, dtype)


def default(key: Array, n_in: int, n_out: int, dtype=jnp.float32) -> Layer:
    """W_jk ~ N(0, 1/n_in), b_j ~ N(0, 1) (ch3, eq. 'weight initialization')."""
    return _normal_layer(key, n_in, n_out, n_in**-0.5, dtype)


def network3(key: Array, n_in: int, n_out: int, dtype=jnp.float32) -> Layer:
    """W_jk ~ N(0, 1/n_out), b_j ~ N(0, 1) (ch6, network3.py's FullyConnectedLayer)."""
    return _normal_layer(key, n_in, n_out, n_out**-0.5, dtype)


def zeros(key: Array, n_in: int, n_out: int, dtype=jnp.float32) -> Layer:
    """W = 0, b = 0 (ch6, network3.py's SoftmaxLayer). The key is unused."""
    return {"w": jnp.zeros((n_out, n_in), dtype), "b": jnp.zeros((n_out,), dtype)}


def glorot(key: Array, n_in: int, n_out: int, dtype=jnp.float32) -> Layer:
    """W_jk ~ N(0, 2/(n_in + n_out)), b = 0 (Glorot & Bengio 2010, normal form; not in the book)."""
    return {"w": (2.0 / (n_in + n_out)) ** 0.5 * jax.random.normal(key, (n_out, n_in), dtype),
            "b": jnp.zeros((n_out,), dtype)}


def he(key: Array, n_in: int, n_out: int, dtype=jnp.float32) -> Layer:
    """W_jk ~ N(0, 2/n_in), b = 0 (He et al. 2015, for ReLU layers; not in the book)."""
    return {"w": (2.0 / n_in) ** 0.5 * jax.random.normal(key, (n_out, n_in), dtype),
            "b": jnp.zeros((n_out,), dtype)}


BY_NAME: dict[str, LayerInit] = {
    "large": large,
    "default": default,
    "network3": network3,
    "zeros": zeros,
    "glorot": glorot,
    "he": he,
}


def get(name: str) -> LayerInit:
    """Look up an initialiser by name ("large", "default", "network3", "zeros")."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown initialiser {name!r}; choose one of {sorted(BY_NAME)}") from None


def init_params(
    key: Array, sizes: Sequence[int], layer_init: LayerInit | str = default, dtype=jnp.float32
) -> tuple[Layer, ...]:
    """Parameters of a fully connected network with layer sizes ``sizes`` (ch1's ``sizes``).

    Returns a tuple with one ``{"w", "b"}`` dict per layer after the input layer. Each
    layer draws from its own key, split from ``key``.
    """
    validate.prng_key("key", key)
    if (not isinstance(sizes, Sequence) or len(sizes) < 2
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes)):
        raise ValueError(
            f"sizes must list at least two positive integers (input, ..., output), got {sizes!r}"
        )
    try:
        floating = jnp.issubdtype(dtype, jnp.floating)
    except TypeError:
        floating = False
    if not floating:
        raise ValueError(f"dtype must be a floating-point type, got {dtype!r}")
    if isinstance(layer_init, str):
        layer_init = get(layer_init)
    keys = jax.random.split(key, len(sizes) - 1)
    return tuple(
        layer_init(k, n_in, n_out, dtype) for k, n_in, n_out in zip(keys, sizes[:-1], sizes[1:])
    )
