"""Dropout for fully connected networks (ch3, "dropout"; ch6, network3.py).

While training, each unit feeding a layer after the first is dropped with probability p,
a fresh random subset for every example, and the thinned network is trained by ordinary
backpropagation. The one rule is `nnjax.layers.Dropout`, in two conventions:

- network3.py's (the book's): drop units while training and multiply the weights they
  feed by (1 − p) at test time (`drop`, `scale_weights`, `inference_params`);
- inverted dropout: scale the kept units by 1/(1 − p) while training and use the weights
  unchanged at test time (`drop_inverted`).
"""

import jax

from nnjax import layers, network
from nnjax.layers import check_p
from nnjax.network import Network, Params

Array = jax.Array


def keep_mask(key: Array, shape: tuple[int, ...], p: float) -> Array:
    """The mask `drop` uses: each entry True (kept) independently with probability 1 − p."""
    return jax.random.bernoulli(key, 1.0 - check_p(p), shape)


def drop(key: Array, a: Array, p: float) -> Array:
    """network3.py's training-time dropout: a ⊙ mask, each unit zeroed with probability p."""
    return layers.Dropout(p, "network3").apply((), a, key)


def drop_inverted(key: Array, a: Array, p: float) -> Array:
    """Inverted dropout: a ⊙ mask / (1 − p), so that E[output] = a and test time needs no change."""
    return layers.Dropout(p, "inverted").apply((), a, key)


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
    example and layer, from key l of ``jax.random.split(key, L)``), then z^l = w^l a^{l−1} + b^l.
    """
    return network.cost(params, x, y, net, key, check_p(p), "inverted" if inverted else "network3")


def make_grad(net: Network, p: float, inverted: bool = False):
    """``grad(params, x, y, key)``: ∇ of the dropout `cost` by jax.grad (a new thinned net per
    key)."""
    check_p(p)
    return jax.grad(lambda params, x, y, key: cost(params, x, y, net, key, p, inverted))
