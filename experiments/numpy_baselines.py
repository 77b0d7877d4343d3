"""NumPy baselines for chapter 1 and the benchmark.

Two groups of plain-NumPy reference implementations live here:

* The book's network (chapter 1/2): a fully connected net with sigmoid
  activations everywhere, the quadratic cost ``C = 1/2 ||a - y||^2`` with
  ``y`` the one-hot encoding of the integer label, trained by mini-batch SGD
  ``w -> w - (eta/m) sum_x grad C_x``.  Two renderings are given:

  - :func:`backprop_example` / :func:`sgd_epoch_per_example`: the book's
    ``network.py`` algorithm, one example (column vector) at a time;
  - :func:`backprop_matrix` / :func:`sgd_epoch_matrix`: the fully
    matrix-based form, a whole mini-batch per pass (the book's chapter-2
    exercise).

  These are what the project's compiled JAX epoch is benchmarked against, so
  they are written to be faithful to the book and reasonably efficient
  (float32 throughout when given float32, no needless copies), with no
  algorithmic shortcuts the book does not take.

* The chapter-1 non-neural baselines: random guessing (B1), average darkness
  (B2) and an RBF support vector machine (B3, needs scikit-learn).

Shapes and conventions
----------------------
Parameters are lists ``ws``, ``bs`` with ``ws[l]`` of shape ``(n_out, n_in)``
and ``bs[l]`` of shape ``(n_out,)`` (1-D).  Inputs to the batch functions are
row-major: ``X`` has shape ``(n_examples, n_in)`` and labels ``y`` are
integers of shape ``(n_examples,)``.  In the per-example code a single input
``x`` is a 1-D vector of length ``n_in``, playing the part of the book's
column vector.  Book notation: ``z^l = w^l a^{l-1} + b^l``,
``a^l = sigma(z^l)``.

No function here reads or writes global random state: every source of
randomness is an explicit ``numpy.random.Generator`` argument.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "init_large",
    "sigmoid",
    "sigmoid_prime",
    "backprop_example",
    "backprop_matrix",
    "sgd_epoch_per_example",
    "sgd_epoch_matrix",
    "evaluate",
    "quadratic_cost",
    "random_guess_accuracy",
    "average_darkness",
    "svm_baseline",
]

Params = tuple[list[np.ndarray], list[np.ndarray]]


# ---------------------------------------------------------------------------
# Initialisation and activation
# ---------------------------------------------------------------------------


def init_large(rng: np.random.Generator, sizes: Sequence[int], dtype=np.float32) -> Params:
    """Chapter-1 ("large") initialisation: every weight and bias ~ N(0, 1).

    Args:
        rng: the random generator to draw from (no global state is used).
        sizes: layer widths, e.g. ``[784, 30, 10]``.
        dtype: ``np.float32`` (the benchmark's) or ``np.float64`` (network.py's, whose
            ``np.random.randn`` weights make every product float64).

    Returns:
        ``(ws, bs)`` with ``ws[l]`` of shape ``(sizes[l+1], sizes[l])`` and
        ``bs[l]`` of shape ``(sizes[l+1],)``, all of ``dtype``.
    """
    sizes = [int(n) for n in sizes]
    if len(sizes) < 2:
        raise ValueError(f"need at least an input and an output layer, got sizes={sizes}")
    ws = [
        rng.standard_normal((n_out, n_in), dtype=dtype)
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]
    bs = [rng.standard_normal(n_out, dtype=dtype) for n_out in sizes[1:]]
    return ws, bs


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-z))``, keeping ``z``'s dtype.

    Computed in a fresh array with in-place ufuncs (one allocation).  For very
    negative ``z`` ``exp(-z)`` overflows to ``inf`` and the result is the
    correct limit 0; callers that care silence the overflow warning with
    ``np.errstate(over="ignore")``.
    """
    s = np.negative(z)
    np.exp(s, out=s)
    s += 1
    np.reciprocal(s, out=s)
    return s


def sigmoid_prime(z: np.ndarray) -> np.ndarray:
    """Derivative of the sigmoid, ``sigma(z) (1 - sigma(z))``."""
    s = sigmoid(z)
    return s * (1 - s)


def _sigmoid_prime_from_activation(a: np.ndarray) -> np.ndarray:
    """``sigma'(z)`` given ``a = sigma(z)`` (avoids recomputing the exponential)."""
    return a * (1 - a)


# ---------------------------------------------------------------------------
# Backpropagation
# ---------------------------------------------------------------------------


def _backprop_example(ws, bs, x, y):
    """Body of :func:`backprop_example`, without the floating-point guard.

    Mirrors network.py's ``backprop`` step for step: the forward pass keeps every z^l
    and a^l, and σ′(z^l) is evaluated from z^l when it is needed, as the book does.
    """
    activation = x
    activations = [x]  # a^0 = x, a^1, ..., a^L
    zs = []  # z^1, ..., z^L
    for w, b in zip(ws, bs):
        z = w @ activation + b  # z^l = w^l a^{l-1} + b^l
        zs.append(z)
        activation = sigmoid(z)  # a^l = sigma(z^l)
        activations.append(activation)

    n_layers = len(ws)
    nabla_w: list[np.ndarray] = [None] * n_layers  # type: ignore[list-item]
    nabla_b: list[np.ndarray] = [None] * n_layers  # type: ignore[list-item]

    # BP1: delta^L = (a^L - y) ⊙ sigma'(z^L)   (nabla_a C = a^L - y for the quadratic cost)
    delta = (activations[-1] - y) * sigmoid_prime(zs[-1])
    nabla_b[-1] = delta  # BP3: dC/db^L = delta^L
    nabla_w[-1] = np.outer(delta, activations[-2])  # BP4: dC/dw^L = delta^L (a^{L-1})^T

    # Walk back through the hidden layers l = L-1, ..., 1.
    for l in range(n_layers - 2, -1, -1):
        # BP2: delta^l = ((w^{l+1})^T delta^{l+1}) ⊙ sigma'(z^l)
        delta = (ws[l + 1].T @ delta) * sigmoid_prime(zs[l])
        nabla_b[l] = delta  # BP3: dC/db^l = delta^l
        nabla_w[l] = np.outer(delta, activations[l])  # BP4: dC/dw^l = delta^l (a^{l-1})^T
    return nabla_w, nabla_b


def backprop_example(ws, bs, x, y_onehot):
    """Gradient of the quadratic cost for a single example (the book's algorithm).

    Implements the four backpropagation equations BP1-BP4 on one input vector
    at a time, as the book's ``network.py`` does.

    Args:
        ws, bs: parameters, ``ws[l]`` shaped ``(n_out, n_in)``, ``bs[l]`` 1-D.
        x: one input, 1-D of length ``n_in`` (the book's column vector).
        y_onehot: desired output, 1-D one-hot vector of length ``n_out``.

    Returns:
        ``(nabla_w, nabla_b)``: lists shaped like ``ws`` and ``bs`` holding
        ``dC_x/dw^l`` and ``dC_x/db^l`` for ``C_x = 1/2 ||a^L - y||^2``.
    """
    with np.errstate(over="ignore"):
        return _backprop_example(ws, bs, np.asarray(x), np.asarray(y_onehot))


def _backprop_matrix(ws, bs, X, Y):
    """Body of :func:`backprop_matrix`, without the floating-point guard."""
    # Row-major form: row i of A^l is a^l for example i, so
    # Z^l = A^{l-1} (w^l)^T + b^l is the book's z^l = w^l a^{l-1} + b^l for
    # every example at once.
    activation = X
    activations = [X]
    for w, b in zip(ws, bs):
        Z = activation @ w.T + b  # z^l = w^l a^{l-1} + b^l, per row
        activation = sigmoid(Z)  # a^l = sigma(z^l)
        activations.append(activation)

    n_layers = len(ws)
    nabla_w: list[np.ndarray] = [None] * n_layers  # type: ignore[list-item]
    nabla_b: list[np.ndarray] = [None] * n_layers  # type: ignore[list-item]

    # BP1, one row per example: delta^L = (a^L - y) ⊙ sigma'(z^L)
    A_out = activations[-1]
    delta = (A_out - Y) * _sigmoid_prime_from_activation(A_out)
    # BP3 summed over the batch: sum_x dC_x/db^L = sum_x delta^L_x
    nabla_b[-1] = delta.sum(axis=0)
    # BP4 summed over the batch: sum_x delta^L_x (a^{L-1}_x)^T = Delta^T A^{L-1}
    nabla_w[-1] = delta.T @ activations[-2]

    for l in range(n_layers - 2, -1, -1):
        A_l = activations[l + 1]
        # BP2 per row: delta^l = ((w^{l+1})^T delta^{l+1}) ⊙ sigma'(z^l)
        delta = (delta @ ws[l + 1]) * _sigmoid_prime_from_activation(A_l)
        nabla_b[l] = delta.sum(axis=0)  # BP3, summed over the batch
        nabla_w[l] = delta.T @ activations[l]  # BP4, summed over the batch
    return nabla_w, nabla_b


def backprop_matrix(ws, bs, X, Y_onehot):
    """Fully matrix-based backpropagation over a mini-batch.

    Args:
        ws, bs: parameters as for :func:`backprop_example`.
        X: inputs, shape ``(m, n_in)``, one example per row.
        Y_onehot: one-hot targets, shape ``(m, n_out)``.

    Returns:
        ``(nabla_w, nabla_b)``: the *sum* over the ``m`` examples of the
        per-example gradients, i.e. the same as adding up
        :func:`backprop_example` over the rows (up to rounding).
    """
    with np.errstate(over="ignore"):
        return _backprop_matrix(ws, bs, np.asarray(X), np.asarray(Y_onehot))


# ---------------------------------------------------------------------------
# Stochastic gradient descent
# ---------------------------------------------------------------------------


def _epoch_setup(ws, bs, X, y, eta, batch_size):
    """Shared argument checking / copying for the two epoch functions."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    ws = [np.array(w, copy=True) for w in ws]  # never touch the caller's arrays
    bs = [np.array(b, copy=True) for b in bs]
    dtype = ws[0].dtype
    # Match the inputs to the parameter dtype once per epoch (a no-op when
    # they already agree, which is the intended float32 use).
    X = np.asarray(X, dtype=dtype)
    y = np.asarray(y)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, n_in) matching y of shape (n,); got {X.shape}, {y.shape}")
    n_out = ws[-1].shape[0]
    # The book's training data carries vectorised (one-hot) labels; build them once.
    Y = np.eye(n_out, dtype=dtype)[y]
    return ws, bs, X, Y


def sgd_epoch_per_example(ws, bs, X, y, eta, batch_size, rng: np.random.Generator):
    """One epoch of the book's ``network.py`` mini-batch SGD.

    The training order is shuffled with ``rng``; the shuffled data are cut
    into consecutive mini-batches of ``batch_size`` (the last one may be
    shorter); for each mini-batch the per-example gradients from
    :func:`backprop_example` are summed and the parameters are updated with
    ``w -> w - (eta/m) sum_x grad_w C_x`` (likewise ``b``), ``m`` being that
    mini-batch's size.

    Args:
        ws, bs: parameters (not modified).
        X: training inputs, ``(n, n_in)``; converted once to the parameter dtype.
        y: integer labels, ``(n,)``.
        eta: learning rate.
        batch_size: mini-batch size.
        rng: generator used for the shuffle.

    Returns:
        New lists ``(ws, bs)`` after the epoch.
    """
    ws, bs, X, Y = _epoch_setup(ws, bs, X, y, eta, batch_size)
    order = rng.permutation(X.shape[0])
    with np.errstate(over="ignore"):
        for start in range(0, order.shape[0], batch_size):
            batch = order[start : start + batch_size]
            # As network.py's update_mini_batch: fresh sums, one new array per example.
            nabla_w = [np.zeros_like(w) for w in ws]
            nabla_b = [np.zeros_like(b) for b in bs]
            for i in batch:
                dnw, dnb = _backprop_example(ws, bs, X[i], Y[i])
                nabla_w = [nw + d for nw, d in zip(nabla_w, dnw)]
                nabla_b = [nb + d for nb, d in zip(nabla_b, dnb)]
            step = eta / batch.shape[0]
            ws = [w - step * nw for w, nw in zip(ws, nabla_w)]
            bs = [b - step * nb for b, nb in zip(bs, nabla_b)]
    return ws, bs


def sgd_epoch_matrix(ws, bs, X, y, eta, batch_size, rng: np.random.Generator):
    """One epoch of mini-batch SGD using :func:`backprop_matrix`.

    Identical to :func:`sgd_epoch_per_example` (same shuffle for the same
    ``rng`` state, same mini-batches, same update rule) except that each
    mini-batch's summed gradient is computed in one matrix-based pass.

    Returns:
        New lists ``(ws, bs)`` after the epoch; the inputs are not modified.
    """
    ws, bs, X, Y = _epoch_setup(ws, bs, X, y, eta, batch_size)
    order = rng.permutation(X.shape[0])
    with np.errstate(over="ignore"):
        for start in range(0, order.shape[0], batch_size):
            batch = order[start : start + batch_size]
            nabla_w, nabla_b = _backprop_matrix(ws, bs, X[batch], Y[batch])
            step = eta / batch.shape[0]
            for w, nw in zip(ws, nabla_w):
                nw *= step
                w -= nw
            for b, nb in zip(bs, nabla_b):
                nb *= step
                b -= nb
    return ws, bs


# ---------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------


def _feedforward(ws, bs, X):
    """Output activations ``a^L`` for each row of ``X``."""
    a = np.asarray(X, dtype=ws[0].dtype)
    with np.errstate(over="ignore"):
        for w, b in zip(ws, bs):
            a = sigmoid(a @ w.T + b)  # a^l = sigma(w^l a^{l-1} + b^l), per row
    return a


def evaluate(ws, bs, X, y) -> int:
    """Number of examples whose output's argmax equals the integer label."""
    return int(np.count_nonzero(np.argmax(_feedforward(ws, bs, X), axis=1) == np.asarray(y)))


def quadratic_cost(ws, bs, X, y) -> float:
    """Mean over the examples of ``1/2 ||a^L - y||^2`` (y one-hot), in float64."""
    A = _feedforward(ws, bs, X).astype(np.float64)
    A[np.arange(A.shape[0]), np.asarray(y)] -= 1.0
    return float(0.5 * np.einsum("ij,ij->", A, A) / A.shape[0])


# ---------------------------------------------------------------------------
# Chapter-1 non-neural baselines
# ---------------------------------------------------------------------------


def random_guess_accuracy(y, rng: np.random.Generator, n_classes: int = 10) -> float:
    """B1: fraction correct when every label is guessed uniformly at random.

    Args:
        y: integer labels.
        rng: generator for the guesses.
        n_classes: number of possible labels (10 for MNIST).
    """
    y = np.asarray(y)
    guesses = rng.integers(0, n_classes, size=y.shape[0])
    return float(np.count_nonzero(guesses == y) / y.shape[0])


def _darkness(images) -> np.ndarray:
    """Total darkness (sum of pixel values) of each image, in float64."""
    images = np.asarray(images)
    return images.reshape(images.shape[0], -1).sum(axis=1, dtype=np.float64)


def average_darkness(train_x, train_y, test_x, test_y) -> int:
    """B2: classify by nearest average darkness.

    For each digit seen in training, the mean over its training images of the
    total darkness (sum of pixel values) is computed; a test image is assigned
    the digit whose mean darkness is closest to its own darkness (ties go to
    the smaller digit).

    Args:
        train_x, test_x: images, ``(n, ...)`` (any trailing shape; raw uint8
            or scaled floats alike -- darkness is summed in float64).
        train_y, test_y: integer labels.

    Returns:
        The number of test images classified correctly.
    """
    train_dark = _darkness(train_x)
    train_y = np.asarray(train_y)
    digits = np.unique(train_y)  # sorted, so argmin ties favour the smaller digit
    means = np.array([train_dark[train_y == d].mean() for d in digits])
    test_dark = _darkness(test_x)
    guesses = digits[np.argmin(np.abs(test_dark[:, None] - means[None, :]), axis=1)]
    return int(np.count_nonzero(guesses == np.asarray(test_y)))


def svm_baseline(train_x, train_y, test_x, test_y, n_train: int | None = None) -> int:
    """B3: an RBF-kernel support vector machine (scikit-learn's ``SVC``).

    Uses ``SVC(kernel="rbf", C=1.0, gamma=1/784)`` -- the settings the book's
    chapter-1 SVM ran with on MNIST (``gamma = 1/n_features`` for 28x28
    images) -- fitted on the first ``n_train`` training examples (all when
    ``None``).  Images are flattened to rows.  Fitting on all 50,000 MNIST
    images takes minutes; pass a smaller ``n_train`` for a quick run.

    Returns:
        The number of test examples classified correctly.

    Raises:
        ImportError: if scikit-learn is not installed.
    """
    try:
        from sklearn import svm
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "svm_baseline needs scikit-learn; install it with: pip install 'nnjax[svm]'"
        ) from exc

    train_x = np.asarray(train_x)
    train_y = np.asarray(train_y)
    if n_train is not None:
        train_x = train_x[:n_train]
        train_y = train_y[:n_train]
    train_x = train_x.reshape(train_x.shape[0], -1)
    test_x = np.asarray(test_x)
    test_x = test_x.reshape(test_x.shape[0], -1)
    clf = svm.SVC(kernel="rbf", C=1.0, gamma=1.0 / 784)
    clf.fit(train_x, train_y)
    return int(np.count_nonzero(clf.predict(test_x) == np.asarray(test_y)))
