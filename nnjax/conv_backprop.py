"""Backpropagation by hand through network3's nets (ch6, problem).

Each layer's backward rule stands beside its forward rule in `nnjax.layers` (BP2–BP4 for
dense layers, BP2c–BP4c for conv layers, BP2p for max-pooling, δ ⊙ σ′(z) for
activations, the mask for dropout); `make_grad` runs them from the cost's BP1. Tests check
it against ``jax.grad`` and finite differences.
"""

import jax

from nnjax import activations, convnet, costs, layers
from nnjax.layers import conv_backward, max_pool_backward  # noqa: F401  (the conv and pool rules)
from nnjax.network import targets


def make_grad(arch, impl: str = "im2col", dropout_mode: str = "network3"):
    """``grad(params, x, y, key=None)``: `nnjax.convnet.make_grad`'s gradient by hand (ch2, ch6),
    the mean of Σ_x ∇C_x.

    BP1 for softmax with log-likelihood, δ^L = a^L − y (ch3, eq. 84), then each layer's
    backward rule (`nnjax.layers`).
    """
    net = convnet.build(arch, dropout_mode=dropout_mode, conv_impl=impl)

    def grad(params, x, y, key=None):
        def bp1(z):
            a, y_vec = activations.softmax(z), targets(y, z.shape[-1])
            return costs.log_likelihood_delta(z, a, y_vec, activations.SOFTMAX)

        total = layers.backprop(net, params, x, bp1, key)
        return jax.tree_util.tree_map(lambda g: g / x.shape[0], total)

    return grad
