"""The gradient of the cost by automatic differentiation (``jax.grad``; ch2's result derived by
JAX).

``grad(params, x, y)`` returns (1/m) Σ_x ∇C_x over a mini-batch as a pytree shaped like
``params``, with the signature of `nnjax.backprop.make_grad`: the reference the
hand-derived BP1–BP4 are tested against.
"""

import jax

from nnjax.network import Network, cost
from nnjax.train import GradFn


def make_grad(net: Network) -> GradFn:
    """The mean gradient of the mini-batch cost, ``jax.grad`` of `nnjax.network.cost`."""
    return jax.grad(lambda params, x, y: cost(params, x, y, net))
