"""nnjax.conv: the two convolutions agree with each other and with the definition; max-pooling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import conv


def conv_by_definition(x, w):
    """z[n, i, j, f] = Σ_{p,q,c} w[p, q, c, f] x[n, i+p, j+q, c] (ch6, eq. 125), loop by loop."""
    x, w = np.asarray(x), np.asarray(w)
    k = w.shape[0]
    m, h, wd, _ = x.shape
    z = np.zeros((m, h - k + 1, wd - k + 1, w.shape[3]))
    for i in range(h - k + 1):
        for j in range(wd - k + 1):
            z[:, i, j, :] = np.einsum("npqc,pqcf->nf", x[:, i:i + k, j:j + k, :], w)
    return z


@pytest.mark.parametrize("m, h, w, c, f, k", [
    (1, 3, 3, 1, 1, 1), (2, 7, 5, 1, 3, 3), (3, 6, 6, 2, 4, 5), (2, 8, 9, 3, 2, 2),
])
def test_im2col_and_lax_match_the_definition(m, h, w, c, f, k):
    kx, kw = jax.random.split(jax.random.key(m * h + w * c + f * k))
    x = jax.random.normal(kx, (m, h, w, c), jnp.float64)
    wt = jax.random.normal(kw, (k, k, c, f), jnp.float64)
    expected = conv_by_definition(x, wt)
    np.testing.assert_allclose(conv.conv2d_im2col(x, wt), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(conv.conv2d_lax(x, wt), expected, rtol=1e-10, atol=1e-10)
    for impl in ("auto", "im2col", "lax"):
        assert conv.conv2d(x, wt, impl).shape == (m, h - k + 1, w - k + 1, f)


def test_patches_order_is_row_column_channel():
    x = jnp.arange(2 * 4 * 4 * 2, dtype=jnp.float64).reshape(2, 4, 4, 2)
    p = conv.patches(x, 2)
    assert p.shape == (2, 3, 3, 8)
    np.testing.assert_array_equal(p[1, 2, 0], np.asarray(x[1, 2:4, 0:2, :]).reshape(-1))


def test_max_pool_takes_the_largest_of_each_region():
    x = jax.random.normal(jax.random.key(0), (2, 6, 4, 3), jnp.float64)
    expected = np.asarray(x).reshape(2, 3, 2, 2, 2, 3).max(axis=(2, 4))
    np.testing.assert_array_equal(conv.max_pool(x, 2), expected)
    assert conv.max_pool(x[:, :3, :3], 3).shape == (2, 1, 1, 3)


def test_auto_picks_a_known_implementation():
    assert conv.resolve_impl("auto") in conv.IMPLS
    assert conv.AUTO["cpu"] == "im2col"


@pytest.mark.parametrize("x_shape, w_shape, match", [
    ((28, 28, 1), (5, 5, 1, 20), "NHWC"),
    ((1, 28, 28, 1), (5, 4, 1, 20), r"\(k, k, C, F\)"),
    ((1, 28, 28, 3), (5, 5, 1, 20), "expects 1 input channels, x has 3"),
    ((1, 4, 4, 1), (5, 5, 1, 20), "does not fit"),
])
def test_conv_rejects_bad_shapes(x_shape, w_shape, match):
    with pytest.raises(ValueError, match=match):
        conv.conv2d(jnp.zeros(x_shape), jnp.zeros(w_shape))


def test_bad_impl_and_pool_size_fail_clearly():
    with pytest.raises(ValueError, match="unknown convolution impl 'fft'"):
        conv.conv2d(jnp.zeros((1, 5, 5, 1)), jnp.zeros((3, 3, 1, 1)), "fft")
    with pytest.raises(ValueError, match="does not tile into 2×2"):
        conv.max_pool(jnp.zeros((1, 5, 4, 1)), 2)
