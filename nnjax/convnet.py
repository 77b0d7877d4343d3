"""network3.py's networks (ch6): an architecture as data, its cost with L2, evaluation.

An architecture is a tuple of layer specs, hashable and JSON-friendly, e.g. the book's
conv20 → conv40 → FC100 → softmax net (6d/6f) is ``network3_arch((20, 40), (100,), "relu")``:

    (("conv", 20), ("pool", 2), ("act", "relu"), ("conv", 40), ("pool", 2), ("act", "relu"),
     ("flatten",), ("dense", 100), ("act", "relu"), ("softmax", 10))

`build` turns it into a `nnjax.layers.Layer`; `nnjax.conv_backprop` differentiates the
same specs by hand. Every conv is 5×5, valid, stride 1.

The training cost is network3.py's: the mean log-likelihood over the mini-batch plus an
L2 term on the weights (never the biases),

    C = −(1/m) Σ_x ln a^L_{y(x)} + (λ/2)·s·Σ_w w²,

with s = m/n in network3.py (the penalty is divided by the number of mini-batches n/m,
so each step decays w by ηλm/n) and s = 1/n in network2.py (decay ηλ/n, ch3, eq. 93).
"""

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from nnjax import costs, layers
from nnjax.network import targets

Array = jax.Array
L2_SCALINGS = ("network3", "network2")


def network3_arch(convs=(), fc=(100,), activation="sigmoid", n_out=10, dropout=0.0) -> tuple:
    """The specs of a network3 net: conv-pool layers, then fully connected, then softmax.

    convs: feature maps of each 5×5 conv layer, each followed by 2×2 max-pooling and σ.
    fc: sizes of the fully connected hidden layers. dropout: p on the inputs of every
    fully connected and the softmax layer (6k), 0 for none.
    """
    arch = []
    for f in convs:
        arch += [("conv", f), ("pool", 2), ("act", activation)]
    arch.append(("flatten",))
    for n in fc:
        arch += [("dropout", dropout)] * (dropout > 0) + [("dense", n), ("act", activation)]
    arch += [("dropout", dropout)] * (dropout > 0) + [("softmax", n_out)]
    return tuple(arch)


def build(arch, *, init: str = "network3", dropout_mode: str = "network3", conv_impl: str = "auto") -> layers.Layer:
    """The `Layer` for an architecture.

    init: "network3" (FC N(0, 1/n_out), conv N(0, 1/(F·25/pool²))) or "default" (both
    N(0, 1/n_in)); the softmax layer always starts at zero, as in network3.py.
    dropout_mode: "network3" or "inverted" (see `nnjax.layers.Dropout`).
    conv_impl: "auto", "im2col" or "lax" (see `nnjax.conv`).
    """
    built = []
    for i, spec in enumerate(arch):
        kind, *args = spec
        if kind == "conv":
            nxt = arch[i + 1] if i + 1 < len(arch) else ()
            pool = nxt[1] if nxt[:1] == ("pool",) else 1
            built.append(layers.Conv(args[0], 5, init, pool, conv_impl))
        elif kind == "pool":
            built.append(layers.MaxPool(args[0]))
        elif kind == "act":
            built.append(layers.Activation(args[0]))
        elif kind == "flatten":
            built.append(layers.Flatten())
        elif kind == "dense":
            built.append(layers.Dense(args[0], init))
        elif kind == "dropout":
            built.append(layers.Dropout(args[0], dropout_mode))
        elif kind == "softmax":
            built.append(layers.Softmax(args[0]))
        else:
            raise ValueError(f"unknown layer spec {spec!r} at position {i}; kinds are conv, pool, "
                             "act, flatten, dense, dropout, softmax")
    return layers.serial(*built)


def l2(params) -> Array:
    """Σ w² over every weight array (the leaves named "w"); biases are not penalised."""
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    return sum(jnp.sum(v**2) for path, v in leaves if getattr(path[-1], "key", None) == "w")


def l2_factor(lmbda: float, n: int, batch_size: int, scaling: str = "network3") -> float:
    """The s·λ/2 multiplying Σw² in the cost: λ/2·m/n (network3.py) or λ/2·1/n (network2.py)."""
    if scaling not in L2_SCALINGS:
        raise ValueError(f"unknown L2 scaling {scaling!r}; choose one of {L2_SCALINGS}")
    if lmbda and not (n > 0 and batch_size > 0):
        raise ValueError(f"L2 needs the training-set size n and mini-batch size, got n={n!r}, batch_size={batch_size!r}")
    return 0.0 if not lmbda else 0.5 * lmbda * (batch_size if scaling == "network3" else 1) / n


def log_likelihood(z: Array, y: Array) -> Array:
    """Mean of C_x = −ln softmax(z)_y over the rows of z (ch3, eq. 80); y integer labels."""
    return jnp.mean(jax.vmap(costs.log_likelihood_fn)(z, z, targets(y, z.shape[-1])))


def make_loss(apply, *, lmbda: float = 0.0, n: int = 0, batch_size: int = 0, l2_scaling: str = "network3"):
    """``loss(params, x, y, key=None)``: network3's mini-batch cost (see the module docstring)."""
    factor = l2_factor(lmbda, n, batch_size, l2_scaling)

    def loss(params, x, y, key=None):
        c = log_likelihood(apply(params, x, key), y)
        return c + factor * l2(params) if factor else c

    return loss


def make_grad(apply, **loss_options):
    """``grad(params, x, y, key=None)``: ∇ of `make_loss`'s cost by ``jax.grad``; a key turns dropout on."""
    return jax.grad(make_loss(apply, **loss_options))


def outputs(apply, params, x: Array, chunk: int = 500) -> Array:
    """z^L for every row of x, in chunks of ``chunk`` examples (bounded memory), evaluation pass."""
    return lax.map(lambda xi: apply(params, xi[None])[0], x, batch_size=min(chunk, x.shape[0]))


def probabilities(apply, params, x: Array, chunk: int = 500) -> Array:
    """a^L = softmax(z^L) for every row of x (ch3, eq. 78)."""
    return jax.nn.softmax(outputs(apply, params, x, chunk), axis=-1)


@partial(jax.jit, static_argnames=("apply", "chunk"))
def evaluate(params, x: Array, y: Array, apply, chunk: int = 500) -> tuple[Array, Array]:
    """(number correct, mean log-likelihood without the L2 term) over a labelled set."""
    z = outputs(apply, params, x, chunk)
    return jnp.sum(jnp.argmax(z, axis=-1) == y), log_likelihood(z, y)
