"""Argument checks shared by the public API: clear errors before any compute.

Every check raises ``ValueError`` (wrong value) or ``TypeError`` (wrong kind of thing)
naming the argument, what was expected and what was given. Shapes, ranks, dtypes and
finiteness are checked by chex through `expect`, which puts the argument's name and what to
do in front of chex's finding. Hyperparameters may be arrays (a sweep vmaps over them) and
are checked element-wise; traced values inside ``jit``/``vmap`` cannot be inspected and are
skipped (docs/design_notes.md).
"""

import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np


def expect(what: str, assertion: Callable[..., None], *args: Any) -> None:
    """Run the chex ``assertion`` on ``args``; its failure becomes ``ValueError("what (finding)")``.

    chex says what it found (shapes, structure, dtype, a non-finite leaf) but not which argument
    it was or what to do; ``what`` does. ``chex.disable_asserts()`` turns these checks off.
    """
    try:
        assertion(*args)
    except AssertionError as err:
        finding = str(err).split(" failed: ", 1)[-1].strip()
        raise ValueError(f"{what} ({finding})") from None


def _values(name: str, value: Any, what: str) -> np.ndarray | None:
    """``value`` as a float array, or None for a tracer; TypeError when it is not numeric."""
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}")
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be {what}, got {type(value).__name__} {value!r}") from None


def in_range(name: str, value: Any, low: float, high: float = math.inf, *,
             low_open: bool = False, high_open: bool = True, what: str = "") -> None:
    """Check that every element of ``value`` is a finite number in the given interval."""
    interval = (f"{'>' if low_open else '>='} {low}" if high == math.inf
                else f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}")
    what = f"a finite number {interval}" + (f" ({what})" if what else "")
    v = _values(name, value, what)
    if v is None:
        return
    ok = np.isfinite(v) & ((v > low) if low_open else (v >= low))
    if high != math.inf:
        ok &= (v < high) if high_open else (v <= high)
    if not np.all(ok):
        raise ValueError(f"{name} must be {what}, got {value!r}")


def positive(name: str, value: Any, what: str = "") -> None:
    """value > 0 and finite, e.g. the learning rate η."""
    in_range(name, value, 0.0, low_open=True, what=what)


def non_negative(name: str, value: Any, what: str = "") -> None:
    """value ≥ 0 and finite, e.g. the regularisation parameter λ."""
    in_range(name, value, 0.0, what=what)


def probability(name: str, value: Any, what: str = "") -> None:
    """0 ≤ value < 1, e.g. a dropout probability p (p = 1 would drop every neuron)."""
    in_range(name, value, 0.0, 1.0, what=what)


def integer(name: str, value: Any, low: int = 0, high: int | None = None) -> None:
    """A Python or NumPy integer (not a bool) in [low, high]."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer {bounds}, got {type(value).__name__} {value!r}")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {bounds}, got {value!r}")


def prng_key(name: str, key: Any) -> None:
    """A single JAX PRNG key: a typed key from ``jax.random.key(seed)`` (or a legacy uint32[2])."""
    hint = f"{name} must be one PRNG key, e.g. jax.random.key(0)"
    if isinstance(key, jax.core.Tracer):
        return
    dtype, shape = getattr(key, "dtype", None), getattr(key, "shape", None)
    if dtype is None or isinstance(key, (int, float, np.number)):
        raise TypeError(f"{hint}; got {type(key).__name__} {key!r}")
    if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(f"{hint}; got an array of keys of shape {shape} (index one of them)")
    elif not (dtype == np.uint32 and shape == (2,)):
        raise TypeError(f"{hint}; got an array of dtype {dtype} and shape {shape}")


def data_pair(name: str, data: Any) -> tuple[jax.Array, jax.Array]:
    """Check a labelled set ``(x, y)``; return it as JAX arrays (on the default device).

    x: (n, n_in) floating point, finite, n ≥ 1. y: (n,) integer labels ≥ 0, or (n, n_out)
    floating-point targets, finite. The upper bound of the labels needs the network's
    n_out: `nnjax.network.check_data` checks it. The values are checked on the host
    (NumPy), so that checking compiles nothing.
    """
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise TypeError(f"{name} must be a pair (x, y), got {type(data).__name__}"
                        + (f" of length {len(data)}" if hasattr(data, "__len__") else ""))
    try:
        x, y = (np.asarray(jax.device_get(a)) for a in data)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must hold two numeric arrays (x, y): {e}") from None
    expect(f"{name}: x must be a non-empty (n, n_in) floating-point array", _batch_of_rows, x)
    int_labels = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
    targets = y.ndim == 2 and np.issubdtype(y.dtype, np.floating)
    if not (int_labels or targets) or y.shape[0] != x.shape[0]:
        raise ValueError(f"{name}: y must be ({x.shape[0]},) integer labels or ({x.shape[0]}, "
                         f"n_out) floating-point targets to match x's {x.shape[0]} rows, got shape "
                         f"{y.shape} and dtype {y.dtype}")
    expect(f"{name}: x holds NaN/Inf values; inputs must be finite (repair or drop those rows)",
           chex.assert_tree_all_finite, x)
    if targets:
        expect(f"{name}: the targets y hold NaN/Inf values; they must be finite",
               chex.assert_tree_all_finite, y)
    if int_labels and y.min() < 0:
        raise ValueError(f"{name}: labels y must be >= 0, got minimum {y.min()}")
    return jnp.asarray(data[0]), jnp.asarray(data[1])


def _batch_of_rows(x: Any) -> None:
    """chex: x is a floating-point matrix with at least one row."""
    chex.assert_rank(x, 2)
    chex.assert_type(x, float)
    chex.assert_axis_dimension_gt(x, 0, 0)
