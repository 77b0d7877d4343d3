"""Chapter 4, "a visual proof that neural nets can compute any function", as constructions.

Every function here *builds* a network's parameters by hand (nothing is trained) and
returns a `Construction`: a `nnjax.network.Network` and its plain parameter pytree, so
the function g it computes is the ordinary feedforward pass.

The chapter's pieces, in order:
- a step: one neuron σ(w x + b) with large w jumps from 0 to 1 at s = −b/w (`steps`);
- a bump: two steps at s1 < s2 read out with weights +h and −h (`bumps`);
- two inputs: an x-bump plus a y-bump fed to a thresholding neuron with bias ≈ −3h/2 is
  a tower (`towers`);
- networks side by side, their weighted outputs added (`parallel`): how the overlap
  repair sums M shifted copies of f/M.
`nnjax.approximation` places these on grids with heights σ⁻¹∘f to approximate a given f.

Any hidden activation s with distinct limits s(−∞) ≠ s(∞) makes steps (the chapter's
closing problem): the readout divides by s(∞) − s(−∞) and moves s(−∞) into the next
bias. `WIGGLY` is such an s. A ReLU step is the difference of two ReLUs, a ramp of
width 1/w. Parameters are built in NumPy float64 and returned as float32 JAX arrays
(docs/design_notes.md says why).
"""

from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from nnjax import activations, validate
from nnjax.activations import Activation
from nnjax.network import Network, Params

Array = jax.Array


def wiggly(z: Array) -> Array:
    """s(z) = σ(z) + 0.2·sin(10z)·e^{−|z|}: not monotone, but s(−∞) = 0 and s(∞) = 1."""
    return jax.nn.sigmoid(z) + 0.2 * jnp.sin(10.0 * z) * jnp.exp(-jnp.abs(z))


def wiggly_prime(z: Array) -> Array:
    """s′(z) = σ′(z) + 0.2·e^{−|z|}·(10 cos(10z) − sgn(z) sin(10z))."""
    return activations.sigmoid_prime(z) + 0.2 * jnp.exp(-jnp.abs(z)) * (
        10.0 * jnp.cos(10.0 * z) - jnp.sign(z) * jnp.sin(10.0 * z))


WIGGLY = Activation("wiggly", wiggly, wiggly_prime)

# s(−∞) and s(∞) of the hidden activations a step can be made from with one neuron.
LIMITS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "wiggly": (0.0, 1.0)}


class Construction(NamedTuple):
    """A network built by hand: its structure and its parameters."""

    net: Network
    params: Params


class Steps(NamedTuple):
    """A hidden layer of step neurons (NumPy): unit step k ≈ readout[k] · a + offset[k]."""

    w: np.ndarray  # (neurons, n_in)
    b: np.ndarray  # (neurons,)
    readout: np.ndarray  # (steps, neurons)
    offset: np.ndarray  # (steps,)


def layer_params(w, b) -> dict[str, Array]:
    """One layer's {"w", "b"} as float32 JAX arrays from NumPy ones (cast in NumPy: even
    jnp.asarray compiles per shape)."""
    return {"w": jax.device_put(np.asarray(w, np.float32)),
            "b": jax.device_put(np.asarray(b, np.float32))}


def steps(directions, positions, w: float, hidden: Activation) -> Steps:
    """Neurons computing unit steps H(d_k · x − s_k) (ch4, "step functions").

    A neuron z = w (d · x − s), i.e. bias b = −w s, so the step sits at s = −b/w. With
    limits lo = s(−∞), hi = s(∞): s(z) ≈ lo + (hi − lo) H, hence H ≈ (a − lo)/(hi − lo).
    ReLU has no upper limit, so it uses two neurons: relu(z + ½) − relu(z − ½) is a ramp
    from 0 to 1 on |d · x − s| ≤ 1/(2w).
    """
    directions = np.atleast_2d(np.asarray(directions, float))
    positions = np.atleast_1d(np.asarray(positions, float))
    k = positions.shape[0]
    if directions.shape[0] != k:
        raise ValueError(f"directions must have one row per step position: {directions.shape[0]} "
                         f"rows, {k} positions")
    if not w > 0:
        raise ValueError(f"the step steepness w must be positive, got {w!r}")
    if hidden.name == "relu":
        return Steps(w * np.repeat(directions, 2, axis=0), -w * np.repeat(positions, 2)
                     + np.tile([0.5, -0.5], k), np.kron(np.eye(k), [[1.0, -1.0]]), np.zeros(k))
    if hidden.name not in LIMITS:
        raise ValueError("a step needs an activation with distinct limits s(−∞) ≠ s(∞); "
                         f"{hidden.name!r} is not one of {sorted(LIMITS)} or 'relu'")
    lo, hi = LIMITS[hidden.name]
    return Steps(w * directions, -w * positions, np.eye(k) / (hi - lo), np.full(k, -lo / (hi - lo)))


def read_out(st: Steps, v, bias) -> tuple[np.ndarray, np.ndarray]:
    """(weights, biases) of the next layer for weighted inputs v · H(x) + bias over the steps H."""
    v = np.atleast_2d(np.asarray(v, float))
    return v @ st.readout, np.asarray(bias, float) + v @ st.offset


def step(s: float, *, w: float = 1000.0, hidden: Activation = activations.SIGMOID) -> Construction:
    """One unit step at s, g(x) ≈ H(x − s), read out by a linear output neuron (ch4, "step
    functions")."""
    st = steps([[1.0]], [s], w, hidden)
    return Construction(Network((1, st.b.shape[0], 1), hidden, activations.LINEAR),
                        (layer_params(st.w, st.b), layer_params(*read_out(st, [1.0], [0.0]))))


def bumps(lo, hi, heights, *, w: float = 1000.0, hidden: Activation = activations.SIGMOID,
          output: Activation = activations.SIGMOID) -> Construction:
    """A [1, 2N, 1] network whose weighted output is Σ_j h_j (H(x − lo_j) − H(x − hi_j)) (ch4,
    "bumps").

    Bump j is a step up at lo_j read out with weight +h_j and a step down at hi_j with −h_j.
    """
    lo, hi, heights = (np.atleast_1d(np.asarray(a, float)) for a in (lo, hi, heights))
    if not lo.shape == hi.shape == heights.shape or lo.ndim != 1:
        raise ValueError("lo, hi and heights must be 1-D and of equal length, got shapes "
                         f"{lo.shape}, {hi.shape}, {heights.shape}")
    if not np.all(lo < hi):
        raise ValueError("every bump needs lo < hi (its step up before its step down)")
    st = steps(np.ones((2 * lo.shape[0], 1)), np.stack([lo, hi], 1).ravel(), w, hidden)
    out = read_out(st, np.stack([heights, -heights], 1).ravel(), [0.0])
    params = (layer_params(st.w, st.b), layer_params(*out))
    return Construction(Network((1, st.b.shape[0], 1), hidden, output), params)


def towers(x_edges, y_edges, heights, *, w: float = 1000.0, tower_w: float = 100.0,
           hidden: Activation = activations.SIGMOID,
           output: Activation = activations.SIGMOID) -> Construction:
    """A [2, ·, n_x·n_y, 1] network with one tower per grid cell (ch4, "many input variables").

    The first hidden layer holds steps in x at ``x_edges`` and in y at ``y_edges``; the
    book draws four step neurons per tower, neighbouring towers here share them (the
    same function, with 2 + n_x + n_y neurons instead of 4·n_x·n_y). Tower (i, j) is a
    thresholding neuron with weighted input h·(x-bump_i + y-bump_j) − 3h/2, h = ``tower_w``:
    ≈ 1 where both bumps are 1, ≈ 0 where at most one is. The output weights are the
    tower heights ``heights[i, j]``.
    """
    x_edges, y_edges = np.asarray(x_edges, float), np.asarray(y_edges, float)
    nx, ny = x_edges.shape[0] - 1, y_edges.shape[0] - 1
    heights = np.asarray(heights, float)
    if min(nx, ny) < 1:
        raise ValueError("x_edges and y_edges need at least two edges each (one cell)")
    validate.expect(f"heights must have shape (len(x_edges) − 1, len(y_edges) − 1) = {(nx, ny)}",
                    chex.assert_shape, heights, (nx, ny))
    if not (np.all(np.diff(x_edges) > 0) and np.all(np.diff(y_edges) > 0)):
        raise ValueError("x_edges and y_edges must be strictly increasing")
    directions = np.concatenate([np.tile([1.0, 0.0], (nx + 1, 1)),
                                 np.tile([0.0, 1.0], (ny + 1, 1))])
    st1 = steps(directions, np.concatenate([x_edges, y_edges]), w, hidden)
    bump_x = np.eye(nx, nx + 1) - np.eye(nx, nx + 1, k=1)  # x-bump i = x-step i − x-step i+1
    bump_y = np.eye(ny, ny + 1) - np.eye(ny, ny + 1, k=1)
    # row i·n_y + j
    v = np.concatenate([np.repeat(bump_x, ny, axis=0), np.tile(bump_y, (nx, 1))], axis=1)
    # u = v · H(x) = v · (readout a + offset) is x-bump_i + y-bump_j; the tower is a step in u at
    # 3/2.
    st2 = steps(v @ st1.readout, 1.5 - v @ st1.offset, tower_w, hidden)
    out = read_out(st2, heights.ravel(), [0.0])
    sizes = (2, st1.b.shape[0], st2.b.shape[0], 1)
    params = (layer_params(st1.w, st1.b), layer_params(st2.w, st2.b), layer_params(*out))
    return Construction(Network(sizes, hidden, output), params)


def parallel(constructions: Sequence[Construction]) -> Construction:
    """One network whose weighted output is the sum of the constructions' weighted outputs.

    Hidden layers sit side by side (block-diagonal weights); the output weights are
    concatenated and the output biases added. All must share depth and activations.
    """
    first = constructions[0]
    if any(c.net.activation != first.net.activation or c.net.output != first.net.output
           or len(c.params) != len(first.params) or c.net.sizes[0] != first.net.sizes[0]
           for c in constructions):
        raise ValueError("parallel needs constructions with the same inputs, depth and activations")
    per_layer = [[{k: np.asarray(v, float) for k, v in layer.items()} for layer in ls]
                 for ls in zip(*(c.params for c in constructions))]
    params = [layer_params(np.concatenate([x["w"] for x in per_layer[0]]),
                           np.concatenate([x["b"] for x in per_layer[0]]))]
    params += [layer_params(block_diag(*(x["w"] for x in ls)), np.concatenate([x["b"] for x in ls]))
               for ls in per_layer[1:-1]]
    params.append(layer_params(np.concatenate([x["w"] for x in per_layer[-1]], axis=1),
                               sum(x["b"] for x in per_layer[-1])))
    sizes = (first.net.sizes[0],) + tuple(p["b"].shape[0] for p in params)
    return Construction(Network(sizes, first.net.activation, first.net.output), tuple(params))


def block_diag(*blocks: np.ndarray) -> np.ndarray:
    """The matrices ``blocks`` on the diagonal of one matrix, zeros elsewhere: side-by-side
    networks' weights."""
    out = np.zeros((sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)),
                   np.result_type(*blocks))
    r = c = 0
    for b in blocks:
        out[r:r + b.shape[0], c:c + b.shape[1]] = b
        r, c = r + b.shape[0], c + b.shape[1]
    return out


@partial(jax.jit, static_argnames="net")
def _weighted_output(params: Params, x: Array, net: Network) -> Array:
    a = x
    for layer in params[:-1]:
        a = net.activation.fn(a @ layer["w"].T + layer["b"][None, :])
    return a @ params[-1]["w"][0] + params[-1]["b"][0]


def weighted_output(c: Construction, x) -> Array:
    """z^L, the output neuron's weighted input, for each row of x (m, n_in): the book's "weighted
    output".

    The feedforward pass of `nnjax.network` written for the whole batch at once (row i of
    a is example i's activations).
    """
    return _weighted_output(c.params, jnp.asarray(x, jnp.float32), c.net)


def apply(c: Construction, x) -> Array:
    """g(x) = a^L for each row of x (m, n_in)."""
    return c.net.output.fn(weighted_output(c, x))


def hidden_neurons(c: Construction) -> int:
    """The number of hidden neurons, the cost of a construction."""
    return sum(c.net.sizes[1:-1])
