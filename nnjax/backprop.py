"""Backpropagation derived by hand: the four equations BP1–BP4 of chapter 2.

Notation (ch2): z^l = w^l a^{l−1} + b^l, a^l = σ(z^l), δ^l = ∂C/∂z^l.

- BP1  δ^L = ∇_a C ⊙ σ′(z^L)                 (the cost's ``delta``, `nnjax.costs`)
- BP2  δ^l = ((w^{l+1})ᵀ δ^{l+1}) ⊙ σ′(z^l)
- BP3  ∂C/∂b^l_j = δ^l_j
- BP4  ∂C/∂w^l_jk = a^{l−1}_k δ^l_j          (an outer product δ^l (a^{l−1})ᵀ)

`backprop` is the book's per-example algorithm; `backprop_matrix` is the matrix-based
form for a whole mini-batch (the chapter's problem), the generic backward pass of
`nnjax.layers` over `nnjax.network.model`. `make_grad` returns the mean gradient with
the pytree of ``jax.grad`` of `nnjax.network.cost` (`nnjax.autodiff`).
"""

import jax
import jax.numpy as jnp

from nnjax import layers
from nnjax.network import Network, Params, model, targets
from nnjax.train import GradFn

Array = jax.Array


def backprop(params: Params, x: Array, y: Array, net: Network) -> Params:
    """∇C_x for one example x of shape (n_in,) and target vector y (ch2, "the backpropagation
    algorithm")."""
    z, caches = model(net).forward(params, x, None)  # caches: a^0, z^1, a^1, z^2, ..., a^{L−1}
    activations, zs = caches[0::2], caches[1::2] + [z]
    delta = net.cost.delta(z, net.output.fn(z), y, net.output)  # BP1
    grads = []
    for l in range(len(params) - 1, -1, -1):  # l indexes params; layer l+1 in the book
        grads.append({
            "w": jnp.outer(delta, activations[l]),  # BP4: δ^l (a^{l−1})ᵀ
            "b": delta,  # BP3
        })
        if l > 0:
            delta = (params[l]["w"].T @ delta) * net.activation.prime(zs[l - 1])  # BP2
    return tuple(reversed(grads))


def backprop_matrix(params: Params, x: Array, y: Array, net: Network) -> Params:
    """Σ_x ∇C_x over a mini-batch x of shape (m, n_in), all examples at once (ch2, problem).

    Row i of Δ^l is example i's δ^l: BP4 summed over examples is (Δ^l)ᵀ A^{l−1}, BP2 is
    (Δ^{l+1} w^{l+1}) ⊙ σ′(Z^l) (`nnjax.layers.Dense` and `nnjax.layers.Activation`).
    """
    def bp1(z):
        return net.cost.delta(z, net.output.fn(z), y, net.output)

    return layers.backprop(model(net), params, x, bp1)


def make_grad(net: Network, form: str = "matrix") -> GradFn:
    """The mean gradient (1/m) Σ_x ∇C_x of a mini-batch, by hand-derived backprop.

    form: "matrix" (all examples in one pass) or "example" (the book's per-example
    algorithm, vmapped over the batch). Labels y may be integers or target vectors.
    """
    if form == "matrix":

        def grad(params: Params, x: Array, y: Array) -> Params:
            total = backprop_matrix(params, x, targets(y, net.sizes[-1]), net)
            return jax.tree_util.tree_map(lambda g: g / x.shape[0], total)

    elif form == "example":

        def grad(params: Params, x: Array, y: Array) -> Params:
            per_example = jax.vmap(lambda xi, yi: backprop(params, xi, yi, net))
            return jax.tree_util.tree_map(
                lambda g: jnp.mean(g, axis=0), per_example(x, targets(y, net.sizes[-1]))
            )

    else:
        raise ValueError(f"unknown backprop form {form!r}; choose 'matrix' or 'example'")
    return grad
