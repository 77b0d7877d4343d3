"""network3.py's networks (ch6): an architecture as data, its cost, evaluation.

An architecture is a tuple of layer specs, hashable and JSON-friendly, e.g. the book's
conv20 → conv40 → FC100 → softmax net (6d/6f) is ``network3_arch((20, 40), (100,), "relu")``:

    (("conv", 20), ("pool", 2), ("act", "relu"), ("conv", 40), ("pool", 2), ("act", "relu"),
     ("flatten",), ("dense", 100), ("act", "relu"), ("softmax", 10))

`build` turns it into a `nnjax.layers.Layer` through `nnjax.layers.SPECS`; every conv is
5×5, valid, stride 1. The cost is the mean log-likelihood C = −(1/m) Σ_x ln a^L_{y(x)}
(ch3, eq. 80); network3.py's L2 term is the optimiser's weight decay (`nnjax.optim.sgd`).
"""

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from nnjax import costs, layers
from nnjax.network import targets

Array = jax.Array


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


def build(arch, *, init: str = "network3", dropout_mode: str = "network3",
          conv_impl: str = "auto") -> layers.Layer:
    """The `Layer` for an architecture, one `nnjax.layers.SPECS` entry per spec.

    init: "network3" (FC N(0, 1/n_out), conv N(0, 1/(F·25/pool²))) or "default" (both
    N(0, 1/n_in)); the softmax layer always starts at zero, as in network3.py.
    dropout_mode: "network3" or "inverted"; conv_impl: "auto", "im2col" or "lax".
    """
    built = []
    for i, spec in enumerate(arch):
        kind, *args = spec
        if kind not in layers.SPECS:
            raise ValueError(f"unknown layer spec {spec!r} at position {i}; kinds are "
                             f"{', '.join(layers.SPECS)}")
        nxt = tuple(arch[i + 1]) if i + 1 < len(arch) else ()
        # network3's conv initialisation counts the pooling
        pool = nxt[1] if nxt[:1] == ("pool",) else 1
        built.append(layers.SPECS[kind](*args, init=init, dropout_mode=dropout_mode,
                                        conv_impl=conv_impl, pool=pool))
    return layers.serial(*built)


def log_likelihood(z: Array, y: Array) -> Array:
    """Mean of C_x = −ln softmax(z)_y over the rows of z (ch3, eq. 80); y integer labels."""
    return jnp.mean(jax.vmap(costs.log_likelihood_fn)(z, z, targets(y, z.shape[-1])))


def make_loss(apply):
    """``loss(params, x, y, key=None)``: the mean log-likelihood of a mini-batch; a key turns
    dropout on."""
    return lambda params, x, y, key=None: log_likelihood(apply(params, x, key), y)


def make_grad(apply):
    """``grad(params, x, y, key=None)``: ∇ of `make_loss`'s cost by ``jax.grad``."""
    return jax.grad(make_loss(apply))


def outputs(apply, params, x: Array, chunk: int = 500) -> Array:
    """z^L for every row of x, in chunks of ``chunk`` examples (bounded memory), evaluation pass."""
    return lax.map(lambda xi: apply(params, xi[None])[0], x, batch_size=min(chunk, x.shape[0]))


def probabilities(apply, params, x: Array, chunk: int = 500) -> Array:
    """a^L = softmax(z^L) for every row of x (ch3, eq. 78)."""
    return jax.nn.softmax(outputs(apply, params, x, chunk), axis=-1)


@partial(jax.jit, static_argnames=("apply", "chunk"))
def evaluate(params, x: Array, y: Array, apply, chunk: int = 500) -> tuple[Array, Array]:
    """(number correct, mean log-likelihood) over a labelled set."""
    z = outputs(apply, params, x, chunk)
    return jnp.sum(jnp.argmax(z, axis=-1) == y), log_likelihood(z, y)
