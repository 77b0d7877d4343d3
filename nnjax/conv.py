"""Two-dimensional convolution and max-pooling, the operations of chapter 6's layers.

Layout is NHWC: a batch of m images x of shape (m, H, W, C); a kernel w of shape
(k, k, C, F) (HWIO) maps C input channels to F feature maps. The convolution is the
book's local receptive field with shared weights, valid and with stride 1 (ch6, eq. 125):

    z[n, i, j, f] = Σ_{p,q<k} Σ_c w[p, q, c, f] · x[n, i+p, j+q, c]

(a cross-correlation, as in the book). Its output is (m, H−k+1, W−k+1, F); the bias is
added by the layer. `conv2d_im2col` (patches @ w, with its backward pass written by
hand) and `conv2d_lax` (`lax.conv_general_dilated`) compute the same z; `conv2d` picks
one per backend (`AUTO`). docs/design_notes.md explains the two and the choice.
"""

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array

# : The implementation `conv2d(..., impl="auto")` uses on each backend (docs/design_notes.md: "Two
# convolutions").
AUTO = {"cpu": "im2col", "gpu": "lax", "cuda": "lax", "rocm": "lax", "tpu": "lax"}
IMPLS = ("im2col", "lax")


def patches(x: Array, k: int) -> Array:
    """The k×k receptive fields of x (m, H, W, C) as rows: (m, H−k+1, W−k+1, k²C), ordered (p, q,
    c)."""
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    return jnp.concatenate([x[:, p:p + h, q:q + w, :] for p in range(k) for q in range(k)], axis=-1)


@jax.custom_vjp
def conv2d_im2col(x: Array, w: Array) -> Array:
    """Valid, stride-1 convolution (ch6, eq. 125) as im2col: patches(x) @ w.reshape(k²C, F)."""
    k, _, c, f = w.shape
    return patches(x, k) @ w.reshape(k * k * c, f)


def _im2col_forward(x: Array, w: Array):
    k, _, c, f = w.shape
    cols = patches(x, k)
    return cols @ w.reshape(k * k * c, f), (x, w, cols)


def _im2col_backward(saved, delta: Array):
    """(∂C/∂x, ∂C/∂w) from δ = ∂C/∂z (ch6; cf. `nnjax.conv_backprop`, BP2c and BP4c).

    ∂C/∂w = patches(x)ᵀ δ, one matrix product. ∂C/∂x: δ wᵀ gives each patch's gradient,
    and each of the k² slices of it is added back at the offset (p, q) it was read from.
    """
    x, w, cols = saved
    k, _, c, f = w.shape
    m, h, wd, _ = delta.shape
    nabla_w = (cols.reshape(-1, k * k * c).T @ delta.reshape(-1, f)).reshape(w.shape)
    d_cols = (delta @ w.reshape(k * k * c, f).T).reshape(m, h, wd, k, k, c)
    nabla_x = jnp.zeros(x.shape, delta.dtype)
    for p in range(k):
        for q in range(k):
            nabla_x = nabla_x.at[:, p:p + h, q:q + wd, :].add(d_cols[:, :, :, p, q, :])
    return nabla_x.astype(x.dtype), nabla_w.astype(w.dtype)


conv2d_im2col.defvjp(_im2col_forward, _im2col_backward)


def conv2d_lax(x: Array, w: Array) -> Array:
    """The same convolution through `lax.conv_general_dilated` (NHWC input, HWIO kernel)."""
    dtype = jnp.result_type(x, w)  # promote as the im2col matmul does
    return lax.conv_general_dilated(x.astype(dtype), w.astype(dtype), (1, 1), "VALID",
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def check_conv_shapes(x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> None:
    """Raise a clear ValueError unless x (m, H, W, C) and w (k, k, C, F) fit a valid convolution."""
    if len(x_shape) != 4:
        raise ValueError(f"conv2d: x must be NHWC (m, H, W, C), got shape {x_shape}")
    if len(w_shape) != 4 or w_shape[0] != w_shape[1]:
        raise ValueError(f"conv2d: w must be (k, k, C, F), got shape {w_shape}")
    if w_shape[2] != x_shape[3]:
        raise ValueError(f"conv2d: w expects {w_shape[2]} input channels, x has {x_shape[3]} "
                         f"(x shape {x_shape}, w shape {w_shape})")
    if min(x_shape[1:3]) < w_shape[0]:
        raise ValueError(f"conv2d: a {w_shape[0]}×{w_shape[0]} kernel does not fit a "
                         f"{x_shape[1]}×{x_shape[2]} image (valid convolution)")


def resolve_impl(impl: str) -> str:
    """"auto" → the measured choice for the default backend; else check the name."""
    if impl == "auto":
        return AUTO.get(jax.default_backend(), "lax")
    if impl not in IMPLS:
        raise ValueError(f"unknown convolution impl {impl!r}; choose 'auto', 'im2col' or 'lax'")
    return impl


def conv2d(x: Array, w: Array, impl: str = "auto") -> Array:
    """Valid, stride-1 2-D convolution of x (m, H, W, C) with w (k, k, C, F) (ch6, eq. 125)."""
    check_conv_shapes(jnp.shape(x), jnp.shape(w))
    fn = conv2d_im2col if resolve_impl(impl) == "im2col" else conv2d_lax
    return fn(x, w)


def max_pool(x: Array, size: int = 2) -> Array:
    """Max-pooling over non-overlapping size×size regions of x (m, H, W, C) (ch6, "pooling layers").

    Output (m, H/size, W/size, C): each unit is the largest activation in its region.
    """
    h, w = jnp.shape(x)[1:3]
    if h % size or w % size:
        raise ValueError(f"max_pool: a {h}×{w} map does not tile into {size}×{size} regions; "
                         "choose a pool size that divides the map's height and width")
    return _max_pool(x, size)


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool(x: Array, size: int) -> Array:
    m, h, w, c = x.shape
    return jnp.max(x.reshape(m, h // size, size, w // size, size, c), axis=(2, 4))


def _max_pool_forward(x: Array, size: int):
    pooled = _max_pool(x, size)
    return pooled, (x, pooled)


def _max_pool_backward(size: int, saved, delta: Array):
    """∂C/∂x: each region's δ goes to its maximum, shared equally among tied maxima (as ``jax.grad``
    of max)."""
    x, pooled = saved
    m, h, w, c = x.shape
    is_max = x.reshape(m, h // size, size, w // size, size, c) == pooled[:, :, None, :, None, :]
    share = delta / jnp.sum(is_max, axis=(2, 4), dtype=delta.dtype)
    return (jnp.where(is_max, share[:, :, None, :, None, :], 0).astype(x.dtype).reshape(x.shape),)


_max_pool.defvjp(_max_pool_forward, _max_pool_backward)
