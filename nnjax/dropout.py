"""Dropout for fully connected networks (ch3, "dropout"; ch6, network3.py).

While training, each unit feeding a layer is dropped (zeroed) independently with
probability p, a fresh random subset for every mini-batch example; the network is then
trained by ordinary backpropagation through the thinned network. Two conventions make
the test-time network see inputs of the same expected size:

- network3.py's (the book's): drop units while training and multiply the weights they
  feed by (1 − p) at test time (`drop`, `scale_weights`, `inference_params`);
- inverted dropout: scale the kept units by 1/(1 − p) while training and use the weights
  unchanged at test time (`drop_inverted`).

In a fully connected network (ch3: "delete half the hidden neurons") the dropped units
are the hidden activations, i.e. the inputs of every layer after the first; the input
pixels are kept. Keys are explicit; `make_grad` returns the stochastic gradient
``grad(params, x, y, key)`` that `nnjax.train.fit(..., stochastic=True)` calls.
"""

import jax
import jax.numpy as jnp

from nnjax.network import Network, Params, targets

Array = jax.Array


def check_p(p) -> float:
    """p must be a probability in [0, 1): p = 1 would drop every unit."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"the dropout probability p must be a number in [0, 1), got {p!r}")
    return float(p)


def keep_mask(key: Array, shape: tuple[int, ...], p: float) -> Array:
    """A boolean mask, each entry True (kept) independently with probability 1 − p."""
    return jax.random.bernoulli(key, 1.0 - check_p(p), shape)


def drop(key: Array, a: Array, p: float) -> Array:
    """network3.py's training-time dropout: a ⊙ mask, each unit zeroed with probability p."""
    return jnp.where(keep_mask(key, a.shape, p), a, 0.0)


def drop_inverted(key: Array, a: Array, p: float) -> Array:
    """Inverted dropout: a ⊙ mask / (1 − p), so that E[output] = a and test time needs no change."""
    return jnp.where(keep_mask(key, a.shape, p), a / (1.0 - p), 0.0)


def scale_weights(w: Array, p: float) -> Array:
    """network3.py's test-time weights (1 − p)·w for a layer whose inputs were dropped."""
    return (1.0 - check_p(p)) * w


def inference_params(params: Params, p: float, inverted: bool = False) -> Params:
    """The parameters to evaluate a network trained with `cost`'s dropout.

    network3 form: every layer after the first (whose inputs were dropped) gets (1 − p)·w;
    biases and the first layer are unchanged. Inverted dropout: params as they are.
    """
    check_p(p)
    if inverted:
        return params
    return tuple(layer if l == 0 else {**layer, "w": scale_weights(layer["w"], p)}
                 for l, layer in enumerate(params))


def cost(params: Params, x: Array, y: Array, net: Network, key: Array, p: float,
         inverted: bool = False) -> Array:
    """The mean cost (1/m) Σ_x C_x of a mini-batch x (m, n_in) through a thinned network.

    Layer l > 1 sees its inputs a^{l−1} dropped with probability p (a fresh mask per
    example and layer, drawn from ``key``), then z^l = w^l a^{l−1} + b^l as usual.
    """
    keys = jax.random.split(key, len(params))
    thin = drop_inverted if inverted else drop
    a = x
    for l, layer in enumerate(params):
        if l > 0:
            a = thin(keys[l], a, p)
        z = a @ layer["w"].T + layer["b"][None, :]  # rows are examples (batched ch1 eq. 25)
        a = (net.output if l == len(params) - 1 else net.activation).fn(z)
    return jnp.mean(jax.vmap(net.cost.fn)(z, a, targets(y, net.sizes[-1])))


def make_grad(net: Network, p: float, inverted: bool = False):
    """``grad(params, x, y, key)``: ∇ of the dropout `cost` by jax.grad (a new thinned net per key)."""
    check_p(p)
    return jax.grad(lambda params, x, y, key: cost(params, x, y, net, key, p, inverted))
