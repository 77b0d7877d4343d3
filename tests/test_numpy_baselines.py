"""Tests for the plain-NumPy baselines in ``experiments/numpy_baselines.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experiments import numpy_baselines as nb

REPO_ROOT = Path(__file__).resolve().parents[1]


def _float64_net(rng, sizes):
    """Small float64 network with N(0,1) parameters (for gradient checks)."""
    ws, bs = nb.init_large(rng, sizes)
    return [w.astype(np.float64) for w in ws], [b.astype(np.float64) for b in bs]


def _cost_one(ws, bs, x, y_onehot):
    """C_x = 1/2 ||a^L - y||^2 for one example, written independently of the module."""
    a = x
    for w, b in zip(ws, bs):
        a = 1.0 / (1.0 + np.exp(-(w @ a + b)))
    return 0.5 * float(np.sum((a - y_onehot) ** 2))


def _onehot(labels, n):
    out = np.zeros((len(labels), n))
    out[np.arange(len(labels)), labels] = 1.0
    return out


# ---------------------------------------------------------------------------
# Initialisation
# ---------------------------------------------------------------------------


def test_init_large_shapes_dtype_and_determinism():
    ws, bs = nb.init_large(np.random.default_rng(0), [7, 5, 3])
    assert [w.shape for w in ws] == [(5, 7), (3, 5)]
    assert [b.shape for b in bs] == [(5,), (3,)]
    assert all(a.dtype == np.float32 for a in ws + bs)
    ws2, bs2 = nb.init_large(np.random.default_rng(0), [7, 5, 3])
    for a, c in zip(ws + bs, ws2 + bs2):
        np.testing.assert_array_equal(a, c)
    # N(0, 1): loose moment check on a larger draw.
    (big,), _ = nb.init_large(np.random.default_rng(1), [400, 100])
    assert abs(big.mean()) < 0.02 and abs(big.std() - 1.0) < 0.02


# ---------------------------------------------------------------------------
# Backpropagation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [[5, 4, 3], [6, 5, 4, 3], [3, 2]])
def test_backprop_example_matches_finite_differences(sizes):
    rng = np.random.default_rng(42)
    ws, bs = _float64_net(rng, sizes)
    x = rng.random(sizes[0])
    y = np.zeros(sizes[-1])
    y[1] = 1.0

    nabla_w, nabla_b = nb.backprop_example(ws, bs, x, y)

    h = 1e-5
    for params, grads in ((ws, nabla_w), (bs, nabla_b)):
        for p, g in zip(params, grads):
            assert g.shape == p.shape and g.dtype == np.float64
            num = np.empty_like(p)
            for idx in np.ndindex(p.shape):
                saved = p[idx]
                p[idx] = saved + h
                c_plus = _cost_one(ws, bs, x, y)
                p[idx] = saved - h
                c_minus = _cost_one(ws, bs, x, y)
                p[idx] = saved
                num[idx] = (c_plus - c_minus) / (2 * h)
            np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


def test_backprop_example_keeps_float32():
    rng = np.random.default_rng(3)
    ws, bs = nb.init_large(rng, [8, 6, 4])
    x = rng.random(8, dtype=np.float32)
    y = np.eye(4, dtype=np.float32)[2]
    nabla_w, nabla_b = nb.backprop_example(ws, bs, x, y)
    assert all(g.dtype == np.float32 for g in nabla_w + nabla_b)


def test_backprop_matrix_equals_sum_of_per_example():
    rng = np.random.default_rng(7)
    sizes = [6, 5, 4, 3]
    ws, bs = _float64_net(rng, sizes)
    m = 9
    X = rng.random((m, sizes[0]))
    labels = rng.integers(0, sizes[-1], size=m)
    Y = _onehot(labels, sizes[-1])

    mw, mb = nb.backprop_matrix(ws, bs, X, Y)

    sum_w = [np.zeros_like(w) for w in ws]
    sum_b = [np.zeros_like(b) for b in bs]
    for x, y in zip(X, Y):
        dw, db = nb.backprop_example(ws, bs, x, y)
        for acc, d in zip(sum_w + sum_b, dw + db):
            acc += d
    for got, want in zip(mw + mb, sum_w + sum_b):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------
# SGD epochs
# ---------------------------------------------------------------------------


def _separable_problem(rng, n=200, d=4):
    """Two well separated Gaussian blobs in [0, 1]-ish space, labels 0/1."""
    y = rng.integers(0, 2, size=n)
    centres = np.array([[0.2] * d, [0.8] * d])
    X = centres[y] + 0.05 * rng.standard_normal((n, d))
    return X.astype(np.float32), y


@pytest.mark.parametrize("epoch_fn", [nb.sgd_epoch_per_example, nb.sgd_epoch_matrix])
def test_sgd_epoch_reduces_cost_without_mutation_and_is_deterministic(epoch_fn):
    rng = np.random.default_rng(0)
    X, y = _separable_problem(rng)
    ws, bs = nb.init_large(np.random.default_rng(1), [4, 3, 2])
    originals = [a.copy() for a in ws + bs]

    cost_before = nb.quadratic_cost(ws, bs, X, y)
    ws1, bs1 = epoch_fn(ws, bs, X, y, eta=3.0, batch_size=10, rng=np.random.default_rng(5))
    cost_after = nb.quadratic_cost(ws1, bs1, X, y)
    assert cost_after < cost_before

    # The caller's arrays are untouched, and new ones are returned.
    for a, orig in zip(ws + bs, originals):
        np.testing.assert_array_equal(a, orig)
    assert all(a is not c for a, c in zip(ws + bs, ws1 + bs1))
    assert all(a.dtype == np.float32 for a in ws1 + bs1)

    # Same seed, same result (bitwise).
    ws2, bs2 = epoch_fn(ws, bs, X, y, eta=3.0, batch_size=10, rng=np.random.default_rng(5))
    for a, c in zip(ws1 + bs1, ws2 + bs2):
        np.testing.assert_array_equal(a, c)

    # A few more epochs solve the separable problem.
    for seed in range(6, 10):
        ws1, bs1 = epoch_fn(ws1, bs1, X, y, eta=3.0, batch_size=10, rng=np.random.default_rng(seed))
    assert nb.evaluate(ws1, bs1, X, y) == len(y)


def test_two_epoch_functions_agree():
    """Same shuffle and update rule: the two renderings give the same parameters."""
    rng = np.random.default_rng(11)
    X = rng.random((53, 6))  # 53: the last mini-batch is short
    y = rng.integers(0, 3, size=53)
    ws, bs = _float64_net(np.random.default_rng(12), [6, 5, 3])
    a_w, a_b = nb.sgd_epoch_per_example(ws, bs, X, y, 0.5, 10, np.random.default_rng(13))
    m_w, m_b = nb.sgd_epoch_matrix(ws, bs, X, y, 0.5, 10, np.random.default_rng(13))
    for a, c in zip(a_w + a_b, m_w + m_b):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)


def test_single_step_matches_update_rule():
    """One full-batch epoch equals w - (eta/m) * sum of per-example gradients."""
    rng = np.random.default_rng(21)
    X = rng.random((4, 3))
    y = np.array([0, 1, 1, 0])
    ws, bs = _float64_net(np.random.default_rng(22), [3, 2])
    eta = 0.7
    gw, gb = nb.backprop_matrix(ws, bs, X, _onehot(y, 2))
    new_w, new_b = nb.sgd_epoch_per_example(ws, bs, X, y, eta, 4, np.random.default_rng(0))
    np.testing.assert_allclose(new_w[0], ws[0] - eta / 4 * gw[0], rtol=1e-12)
    np.testing.assert_allclose(new_b[0], bs[0] - eta / 4 * gb[0], rtol=1e-12)


def test_evaluate_counts_argmax_matches():
    # One layer, no hidden units: output = sigmoid(W x + b); W = identity picks x's argmax.
    ws = [np.eye(3, dtype=np.float32)]
    bs = [np.zeros(3, dtype=np.float32)]
    X = np.array([[1, 0, 0], [0, 5, 0], [0, 0, 2], [3, 0, 0]], dtype=np.float32)
    assert nb.evaluate(ws, bs, X, np.array([0, 1, 2, 1])) == 3


# ---------------------------------------------------------------------------
# Chapter-1 baselines
# ---------------------------------------------------------------------------


def test_random_guess_accuracy_near_one_tenth():
    y = np.random.default_rng(0).integers(0, 10, size=20_000)
    acc = nb.random_guess_accuracy(y, np.random.default_rng(1))
    assert 0.09 < acc < 0.11
    assert acc == nb.random_guess_accuracy(y, np.random.default_rng(1))


def test_average_darkness_hand_computed():
    # 2x2 "images".  Darkness: digit 0 -> 1 and 3 (mean 2); digit 1 -> 6 and 8 (mean 7).
    train_x = np.array(
        [
            [[1, 0], [0, 0]],
            [[1, 1], [1, 0]],
            [[2, 2], [1, 1]],
            [[2, 2], [2, 2]],
        ],
        dtype=np.uint8,
    )
    train_y = np.array([0, 0, 1, 1])
    # Test darknesses 0, 4, 5, 9, 3 -> nearest means 2, 2 (|4-2|=2 < |4-7|=3), 7, 7, 2.
    test_x = np.array(
        [
            [[0, 0], [0, 0]],
            [[1, 1], [1, 1]],
            [[2, 2], [1, 0]],
            [[3, 3], [3, 0]],
            [[1, 1], [1, 0]],
        ],
        dtype=np.uint8,
    )
    test_y = np.array([0, 0, 0, 1, 1])  # correct: first, second, fourth -> 3
    assert nb.average_darkness(train_x, train_y, test_x, test_y) == 3
    # Same answer for scaled float pixels (darkness is just rescaled).
    assert nb.average_darkness(train_x / 255.0, train_y, test_x / 255.0, test_y) == 3


@pytest.mark.mnist
def test_average_darkness_on_mnist_is_2225(mnist):
    """B2: the book's 22.25% on the 50k training split and the 10k test set."""
    tr, te = mnist.training, mnist.test
    assert nb.average_darkness(tr.x, tr.y, te.x, te.y) == 2225


@pytest.mark.slow
def test_svm_baseline_runs_and_beats_chance():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    n, d = 300, 784
    y = rng.integers(0, 3, size=n)
    centres = rng.random((3, d))
    X = (centres[y] + 0.3 * rng.standard_normal((n, d))).astype(np.float32)
    correct = nb.svm_baseline(X[:200], y[:200], X[200:], y[200:], n_train=150)
    assert correct > 0.6 * 100  # chance is about 1/3


def test_svm_baseline_clear_error_without_sklearn(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install 'nnjax\[svm\]'"):
        nb.svm_baseline(np.zeros((2, 784)), [0, 1], np.zeros((1, 784)), [0])
