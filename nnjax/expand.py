"""Expanding the training data with distorted copies of each image (ch6; ch3 "expanding the data").

The book's 6g–6l train on 250,000 images: each of the 50,000 training images followed by
four copies shifted by one pixel (down, up, right, left), the row or column shifted in
being zero (`shifts`). Everything is computed on the device from the 50,000 originals,
deterministically. ch3's further distortions are options: small rotations (`rotate`) and
Simard et al.'s elastic distortions (`elastic`), both by bilinear resampling.

Images are (n, H, W) or NHWC (n, H, W, C); labels are copied with their images.
"""

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

Array = jax.Array


def shift(images: Array, dy: int, dx: int) -> Array:
    """Move every image down by dy and right by dx pixels (negative: up, left), filling with 0."""
    h, w = images.shape[1:3]
    pad = [(0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))]
    pad += [(0, 0)] * (images.ndim - 3)
    padded = jnp.pad(images, pad)
    return padded[:, max(-dy, 0):max(-dy, 0) + h, max(-dx, 0):max(-dx, 0) + w]


#: The book's four one-pixel shifts, in its order: down, up, right, left.
SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def shifts(x: Array, y: Array, key: Array | None = None) -> tuple[Array, Array]:
    """The 5n images of the expanded set: each image, then its 4 one-pixel shifts (ch6).

    Image i's five versions sit at rows 5i, …, 5i+4. network3.py trains in a fixed order
    over a file that was shuffled once; with ``key`` the 5n rows are permuted once by it,
    deterministically.
    """
    if x.ndim not in (3, 4) or x.shape[0] != y.shape[0]:
        raise ValueError(f"shifts needs images (n, H, W[, C]) and n labels, got x {x.shape} and y "
                         f"{y.shape}")
    versions = jnp.stack([x] + [shift(x, dy, dx) for dy, dx in SHIFTS], axis=1)  # (n, 5, H, W, ...)
    x5 = versions.reshape(-1, *x.shape[1:])
    y5 = jnp.repeat(y, 1 + len(SHIFTS))
    if key is None:
        return x5, y5
    order = jax.random.permutation(key, x5.shape[0])
    return x5[order], y5[order]


def _resample(image: Array, rows: Array, cols: Array) -> Array:
    """Bilinear samples of a 2-D image at (rows, cols); points outside read 0."""
    return map_coordinates(image, [rows, cols], order=1, mode="constant", cval=0.0)


def _per_channel(fn, images: Array, *args) -> Array:
    """Apply a 2-D ``fn(image, *args)`` to (n, H, W) or to every channel of (n, H, W, C)."""
    if images.ndim == 3:
        return jax.vmap(fn)(images, *args)
    return jnp.moveaxis(jax.vmap(jax.vmap(fn, in_axes=(0,) + (None,) * len(args)))(
        jnp.moveaxis(images, -1, 1), *args), 1, -1)


def rotate(images: Array, degrees: Array) -> Array:
    """Rotate image i by degrees[i] (counter-clockwise) about its centre, bilinear, zero fill."""
    h, w = images.shape[1:3]
    r, c = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
    cy, cx = (h - 1) / 2, (w - 1) / 2

    def one(image, deg):
        t = jnp.deg2rad(deg)
        rows = cy + (r - cy) * jnp.cos(t) + (c - cx) * jnp.sin(t)
        cols = cx - (r - cy) * jnp.sin(t) + (c - cx) * jnp.cos(t)
        return _resample(image, rows, cols)

    return _per_channel(one, images, jnp.asarray(degrees, jnp.float32))


def _gaussian_blur(field: Array, sigma: float) -> Array:
    """Separable Gaussian smoothing of a 2-D field (kernel radius 3σ, at most half the field), zero
    padded."""
    radius = max(1, min(int(3 * sigma), (min(field.shape) - 1) // 2))
    t = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    g = jnp.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    field = jax.vmap(lambda row: jnp.convolve(row, g, mode="same"))(field)
    return jax.vmap(lambda col: jnp.convolve(col, g, mode="same"), in_axes=1, out_axes=1)(field)


def elastic(images: Array, key: Array, alpha: float = 34.0, sigma: float = 4.0) -> Array:
    """Elastic distortion (Simard, Steinkraus and Platt 2003): displace each pixel by a random
    field, uniform in [−1, 1], smoothed by a Gaussian of width σ and scaled by α; one field per
    image."""
    n, h, w = images.shape[:3]
    r, c = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                        indexing="ij")
    fields = jax.random.uniform(key, (n, 2, h, w), jnp.float32, -1.0, 1.0)
    fields = alpha * jax.vmap(jax.vmap(lambda f: _gaussian_blur(f, sigma)))(fields)

    def one(image, field):
        return _resample(image, r + field[0], c + field[1])

    return _per_channel(one, images, fields)
