"""nnjax.conv: the two convolutions agree with each other and with the definition; max-pooling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

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


@pytest.mark.parametrize("m, h, w, c, f, k", [(2, 7, 6, 1, 3, 3), (3, 12, 12, 4, 6, 5)])
def test_im2col_backward_by_hand_equals_autodiff_and_finite_differences(m, h, w, c, f, k):
    kx, kw, kg = jax.random.split(jax.random.key(h * w + c), 3)
    x = jax.random.normal(kx, (m, h, w, c), jnp.float64)
    wt = jax.random.normal(kw, (k, k, c, f), jnp.float64)
    probe = jax.random.normal(kg, (m, h - k + 1, w - k + 1, f), jnp.float64)

    def cost(fn):
        return lambda x, wt: jnp.sum(jnp.sin(fn(x, wt)) * probe)

    by_hand = jax.grad(cost(conv.conv2d_im2col), (0, 1))(x, wt)
    # jax.grad of the forward formula itself
    plain = jax.grad(cost(conv.conv2d_im2col.fun), (0, 1))(x, wt)
    library = jax.grad(cost(conv.conv2d_lax), (0, 1))(x, wt)
    for a, b, d in zip(by_hand, plain, library):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a, d, rtol=1e-10, atol=1e-10)
    check_grads(conv.conv2d_im2col, (x, wt), order=1, modes=["rev"])


def test_max_pool_backward_shares_ties_like_autodiff():
    # many tied maxima
    x = jnp.round(jax.random.normal(jax.random.key(3), (2, 8, 6, 3), jnp.float64))
    probe = jax.random.normal(jax.random.key(4), (2, 4, 3, 3), jnp.float64)

    def plain(x):
        return jnp.max(x.reshape(2, 4, 2, 3, 2, 3), axis=(2, 4))

    by_hand = jax.grad(lambda x: jnp.sum(conv.max_pool(x) * probe))(x)
    np.testing.assert_allclose(by_hand, jax.grad(lambda x: jnp.sum(plain(x) * probe))(x),
                               rtol=1e-14, atol=0)
    assert jnp.sum(by_hand != 0) > probe.size  # ties did occur, and share their region's gradient
    check_grads(conv.max_pool, (jax.random.normal(jax.random.key(5), (2, 4, 4, 2), jnp.float64),),
                              order=1, modes=["rev"])
