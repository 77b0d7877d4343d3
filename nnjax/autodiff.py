"""The gradient of the cost by automatic differentiation (``jax.grad``).

The same signature as `nnjax.backprop.make_grad`: ``grad(params, x, y)`` returns
(1/m) Σ_x ∇C_x over a mini-batch as a pytree shaped like ``params``. Chapter 2 derives
this by hand; here JAX derives it from `nnjax.network.cost`, which makes it the
reference the hand-derived equations are tested against, and the path that works for
any network JAX can differentiate.
"""

import jax

from nnjax.network import Network, cost
from nnjax.train import GradFn


def make_grad(net: Network) -> GradFn:
    """The mean gradient of the mini-batch cost, ``jax.grad`` of `nnjax.network.cost`."""
    return jax.grad(lambda params, x, y: cost(params, x, y, net))
