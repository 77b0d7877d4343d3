"""Chapter 4: approximating a given function with the universality constructions.

`nnjax.universality` builds steps, bumps and towers; here they are placed on a grid
and given heights so that the network's output g approximates a target f:

- `approximate_1d`: N bumps on equal bins of an interval, heights φ = σ⁻¹∘f (or f for
  a linear output), optionally M copies of φ/M shifted by 1/M of a bin (the overlap
  repair for the windows where the steps are not sharp);
- `tower_grid`: the same on an n × n grid of towers for f(x, y);
- `relu_interpolant`: ReLU neurons as the kinks of a piecewise-linear interpolant;
- `abs_errors` (max and mean |g − f|) and `book_score`, the chapter's own measure.

Targets are vectorised functions of arrays, f(x) in 1-D and f(x, y) in 2-D, called on
NumPy arrays while building (NumPy ufuncs or jax.numpy both work).
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nnjax import activations
from nnjax.activations import Activation
from nnjax.network import Network
from nnjax.universality import (
    Construction,
    apply,
    bumps,
    layer_params,
    parallel,
    towers,
    weighted_output,
)

Interval = tuple[float, float]


def grid_edges(n: int, interval: Interval = (0.0, 1.0), shift: float = 0.0) -> np.ndarray:
    """Edges of n equal bins covering ``interval``, moved left by ``shift`` of a bin.

    A shifted grid gets one more bin so that it still covers the whole interval.
    """
    if isinstance(n, bool) or not (isinstance(n, int) and n >= 1):
        raise ValueError(f"the number of bins n must be a positive integer, got {n!r}")
    if not 0.0 <= shift < 1.0:
        raise ValueError(f"shift is a fraction of a bin in [0, 1), got {shift!r}")
    lo, hi = interval
    if not lo < hi:
        raise ValueError(f"interval must be (lo, hi) with lo < hi, got {interval!r}")
    return lo + (hi - lo) / n * (np.arange(n + 1 + (shift > 0)) - shift)


def padded(edges: np.ndarray, pad: float) -> np.ndarray:
    """The outermost edges moved out by ``pad``, so the first and last steps are whole inside the
    interval."""
    edges = np.array(edges, float)
    edges[0] -= pad
    edges[-1] += pad
    return edges


def target_space(f: Callable[..., np.ndarray], output: Activation) -> Callable[..., np.ndarray]:
    """φ, what the weighted output must approximate: σ⁻¹∘f for a sigmoid output, f for a linear one
    (ch4)."""
    if output.name not in ("sigmoid", "linear"):
        raise ValueError(f"output must be sigmoid or linear, got {output.name!r}")

    def phi(*x):
        y = np.asarray(f(*x), float)
        if output.name == "linear":
            return y
        if not np.all((y > 0) & (y < 1)):
            raise ValueError("σ⁻¹∘f needs 0 < f < 1 wherever it is evaluated; rescale f or use "
                             "output=LINEAR")
        return np.log(y) - np.log1p(-y)

    return phi


def bin_heights(phi: Callable[[np.ndarray], np.ndarray], edges: np.ndarray,
                interval: Interval = (0.0, 1.0), rule: str = "midpoint",
                samples=None) -> np.ndarray:
    """One height per bin: φ at the bin's midpoint (clipped to ``interval``), or, with
    ``rule="median"``, the median of φ over the ``samples`` inside the bin, which minimises
    the mean |φ − height| over them (the book's score). Bins without samples use the midpoint."""
    mid = np.clip((edges[:-1] + edges[1:]) / 2, *interval)
    if rule == "midpoint":
        return phi(mid)
    if rule != "median" or samples is None:
        raise ValueError(f"rule must be 'midpoint', or 'median' with samples; got rule={rule!r}, "
                         f"samples={'given' if samples is not None else None}")
    samples = np.asarray(samples, float)
    values = phi(samples)
    return np.array([np.median(values[(samples >= a) & (samples < b)])
                     if np.any((samples >= a) & (samples < b)) else m
                     for a, b, m in zip(edges[:-1], edges[1:], phi(mid))])


def _check_copies(copies: int) -> None:
    if isinstance(copies, bool) or not (isinstance(copies, int) and copies >= 1):
        raise ValueError("copies (the M of the overlap repair) must be a positive integer, got "
                         f"{copies!r}")


def approximate_1d(f: Callable, n: int, *, w: float = 1000.0,
                   hidden: Activation = activations.SIGMOID,
                   output: Activation = activations.SIGMOID, interval: Interval = (0.0, 1.0),
                   pad: float = 0.0, rule: str = "midpoint", samples=None,
                   copies: int = 1) -> Construction:
    """g ≈ f on ``interval`` from n bumps, heights φ = σ⁻¹∘f on the bins (ch4, "universality with
    one input").

    copies = M > 1: the sum of M constructions of φ/M, copy k on bins shifted by k/M of a
    bin, so each x lies in the failure window of at most one copy (ch4, the fix for
    steps that are not sharp); the shifted copies have n + 1 bins.
    """
    _check_copies(copies)
    phi = target_space(f, output)
    parts = []
    for k in range(copies):
        edges = grid_edges(n, interval, k / copies)
        h = bin_heights(phi, edges, interval, rule, samples) / copies
        edges = padded(edges, pad)
        parts.append(bumps(edges[:-1], edges[1:], h, w=w, hidden=hidden, output=output))
    return parallel(parts) if copies > 1 else parts[0]


def tower_grid(f: Callable, n: int, *, w: float = 1000.0, tower_w: float = 100.0,
               hidden: Activation = activations.SIGMOID, output: Activation = activations.SIGMOID,
               interval: Interval = (0.0, 1.0), pad: float = 0.0, copies: int = 1) -> Construction:
    """g(x, y) ≈ f(x, y) on interval² from n × n towers, heights φ at the cell centres (ch4).

    copies = M > 1: M grids of towers for φ/M, copy k shifted by k/M of a cell along both
    axes, which fills the gaps at the corners where four towers meet.
    """
    _check_copies(copies)
    phi = target_space(f, output)
    parts = []
    for k in range(copies):
        edges = grid_edges(n, interval, k / copies)
        c = np.clip((edges[:-1] + edges[1:]) / 2, *interval)
        h = phi(c[:, None], c[None, :]) / copies
        edges = padded(edges, pad)
        parts.append(towers(edges, edges, h, w=w, tower_w=tower_w, hidden=hidden, output=output))
    return parallel(parts) if copies > 1 else parts[0]


def relu_interpolant(f: Callable, n: int, *, output: Activation = activations.LINEAR,
                     interval: Interval = (0.0, 1.0)) -> Construction:
    """The piecewise-linear interpolant of φ at n + 1 equally spaced knots x_k, with n ReLUs.

    weighted output φ(x_0) + Σ_{k<n} c_k·relu(x − x_k): c_0 is the first slope and c_k the
    change of slope at x_k, so each ReLU is one kink (a ReLU construction beyond the book's steps).
    """
    knots = grid_edges(n, interval)
    values = target_space(f, output)(knots)
    slopes = np.diff(values) / np.diff(knots)
    c = np.concatenate([slopes[:1], np.diff(slopes)])
    params = (layer_params(np.ones((n, 1)), -knots[:-1]), layer_params(c[None, :], values[:1]))
    return Construction(Network((1, n, 1), activations.RELU, output), params)


def _inputs(x) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    return x[:, None] if x.ndim == 1 else x


def abs_errors(c: Construction, f: Callable, x) -> dict[str, float]:
    """max and mean |g − f| over the points x ((m,) in 1-D, (m, d) in d dimensions)."""
    x = _inputs(x)
    err = np.abs(np.asarray(apply(c, x), float) - np.asarray(f(*np.asarray(x, float).T), float))
    return {"max": float(err.max()), "mean": float(err.mean())}


def book_score(c: Construction, f: Callable, x=None) -> float:
    """The book's score: mean |φ(x) − weighted output(x)| over x = 0, 0.01, …, 0.99 (ch4; goal ≤
    0.40)."""
    x = np.arange(100) / 100 if x is None else np.asarray(x, float)
    g = np.asarray(weighted_output(c, x[:, None]))
    return float(np.mean(np.abs(target_space(f, c.net.output)(x) - g)))
