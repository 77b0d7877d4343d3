"""Backpropagation derived by hand: the four equations BP1–BP4 of chapter 2.

Notation (ch2): z^l = w^l a^{l−1} + b^l, a^l = σ(z^l), δ^l = ∂C/∂z^l.

- BP1  δ^L = ∇_a C ⊙ σ′(z^L)                 (the cost's ``delta``, `nnjax.costs`)
- BP2  δ^l = ((w^{l+1})ᵀ δ^{l+1}) ⊙ σ′(z^l)
- BP3  ∂C/∂b^l_j = δ^l_j
- BP4  ∂C/∂w^l_jk = a^{l−1}_k δ^l_j          (an outer product δ^l (a^{l−1})ᵀ)

`backprop` follows the book's per-example algorithm; `backprop_matrix` is the fully
matrix-based form for a whole mini-batch (the chapter's problem), where row i of A^l is
example i's a^l, so w a becomes A wᵀ and BP4's sum over examples becomes Δᵀ A.

`make_grad` returns the mean gradient over a mini-batch with the same pytree structure
as ``jax.grad`` of `nnjax.network.cost` (see `nnjax.autodiff`), so training can run on
either; tests check the two against each other and against finite differences.
"""

import jax
import jax.numpy as jnp

from nnjax.network import Network, Params, targets
from nnjax.train import GradFn

Array = jax.Array


def _forward(params: Params, a: Array, net: Network) -> tuple[list[Array], list[Array]]:
    """The forward pass, keeping every z^l and a^l (a^0 = x) for the backward pass."""
    zs, activations = [], [a]
    last = len(params) - 1
    for l, layer in enumerate(params):
        # a mini-batch holds one example per row, so w a + b becomes A wᵀ + b (b per row)
        z = a @ layer["w"].T + layer["b"][None, :] if a.ndim == 2 else layer["w"] @ a + layer["b"]
        a = (net.output if l == last else net.activation).fn(z)
        zs.append(z)
        activations.append(a)
    return zs, activations


def backprop(params: Params, x: Array, y: Array, net: Network) -> Params:
    """∇C_x for one example x of shape (n_in,) and target vector y (ch2, "the backpropagation algorithm")."""
    zs, activations = _forward(params, x, net)
    delta = net.cost.delta(zs[-1], activations[-1], y, net.output)  # BP1
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

    Δ^l is the (m, n_l) matrix whose row i is example i's δ^l.
    """
    zs, activations = _forward(params, x, net)
    delta = net.cost.delta(zs[-1], activations[-1], y, net.output)  # BP1, row by row
    grads = []
    for l in range(len(params) - 1, -1, -1):
        grads.append({
            "w": delta.T @ activations[l],  # BP4 summed over examples: Σ_x δ^l (a^{l−1})ᵀ
            "b": jnp.sum(delta, axis=0),  # BP3 summed over examples
        })
        if l > 0:
            delta = (delta @ params[l]["w"]) * net.activation.prime(zs[l - 1])  # BP2, row-wise
    return tuple(reversed(grads))


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
