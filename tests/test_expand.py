"""nnjax.expand: the book's one-pixel shifts, rotations and elastic distortions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import expand


def shifted_by_numpy(img, dy, dx):
    out = np.roll(img, (dy, dx), axis=(0, 1))
    if dy:
        out[0 if dy > 0 else -1, :] = 0
    if dx:
        out[:, 0 if dx > 0 else -1] = 0
    return out


def test_shifts_give_each_image_then_down_up_right_left():
    x = jax.random.uniform(jax.random.key(0), (3, 5, 6))
    y = jnp.array([4, 1, 9])
    x5, y5 = expand.shifts(x, y)
    assert x5.shape == (15, 5, 6)
    np.testing.assert_array_equal(y5, [4] * 5 + [1] * 5 + [9] * 5)
    for i in range(3):
        img = np.asarray(x[i])
        np.testing.assert_array_equal(x5[5 * i], img)
        for j, (dy, dx) in enumerate([(1, 0), (-1, 0), (0, 1), (0, -1)], start=1):
            np.testing.assert_array_equal(x5[5 * i + j], shifted_by_numpy(img, dy, dx))


def test_shifts_work_on_nhwc_and_a_key_permutes_rows_deterministically():
    x = jax.random.uniform(jax.random.key(1), (4, 6, 6, 1))
    y = jnp.arange(4)
    plain_x, plain_y = expand.shifts(x, y)
    a_x, a_y = expand.shifts(x, y, jax.random.key(7))
    b_x, _ = expand.shifts(x, y, jax.random.key(7))
    np.testing.assert_array_equal(a_x, b_x)
    assert not np.array_equal(a_x, plain_x)
    order = np.lexsort(np.asarray(a_x).reshape(20, -1).T)
    np.testing.assert_array_equal(np.asarray(a_x)[order],
                                  np.asarray(plain_x)[np.lexsort(np.asarray(plain_x).reshape(20,
                                      -1).T)])
    assert sorted(a_y.tolist()) == sorted(plain_y.tolist())


def test_rotate_by_0_and_90_degrees():
    x = jax.random.uniform(jax.random.key(2), (2, 7, 7, 1))
    np.testing.assert_allclose(expand.rotate(x, jnp.zeros(2)), x, atol=1e-6)
    quarter = expand.rotate(x[..., 0], jnp.full(2, 90.0))  # counter-clockwise, as displayed
    np.testing.assert_allclose(quarter, np.rot90(np.asarray(x[..., 0]), 1, axes=(1, 2)), atol=1e-5)


def test_elastic_is_the_identity_at_alpha_zero_and_random_otherwise():
    x = jax.random.uniform(jax.random.key(3), (2, 12, 12))
    np.testing.assert_allclose(expand.elastic(x, jax.random.key(0), alpha=0.0), x, atol=1e-6)
    a = expand.elastic(x[..., None], jax.random.key(0), alpha=8.0, sigma=2.0)
    b = expand.elastic(x[..., None], jax.random.key(1), alpha=8.0, sigma=2.0)
    assert a.shape == (2, 12, 12, 1) and not np.allclose(a, b)


def test_shifts_reject_mismatched_labels():
    with pytest.raises(ValueError, match=r"n labels, got x \(3, 5, 5\) and y \(2,\)"):
        expand.shifts(jnp.zeros((3, 5, 5)), jnp.zeros(2, jnp.int32))
