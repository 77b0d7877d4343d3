"""Chapter 5, "why are deep neural networks hard to train?": the unstable gradient, measured.

- Speed of learning: hidden layer l learns at the rate ‖δ^l‖ = ‖∂C/∂b^l‖ (BP3), the
  norm of its bias gradient over a set of training images (`layer_speeds`), and
  `speeds_during_training` follows it through full-batch gradient descent.
- The chain network (one neuron per layer): ∂C/∂b_1 = σ′(z_1) · Π_{j≥2} w_j σ′(z_j) ·
  ∂C/∂a_L, a product of factors w_j σ′(z_j) (`chain_bias_gradients`). With |w_j| < 4
  every factor is below 1 in size and the gradient vanishes; with all w = 100 and every
  z = 0 (`zero_z_biases`) each factor is 25 and it explodes.
- |w σ′(w a + b)| ≥ 1 only for a in an interval of width
  (2/|w|) ln(|w|(1 + √(1 − 4/|w|))/2 − 1) (`large_gradient_width`, the chapter's
  problem), found by brute force in `measured_width`; its largest value is ≈ 0.45.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax import lax

from nnjax.activations import sigmoid, sigmoid_prime
from nnjax.network import Params
from nnjax.train import GradFn

Array = jax.Array


def layer_speeds(grad_fn: GradFn, params: Params, x: Array, y: Array) -> Array:
    """‖∂C/∂b^l‖ = ‖δ^l‖ for each hidden layer l, C the mean cost over (x, y) (ch5).

    BP3 makes the bias gradient δ^l itself; the output layer is left out, as in the book.
    """
    grads = grad_fn(params, x, y)
    return jnp.stack([jnp.linalg.norm(g["b"]) for g in grads[:-1]])


def speeds_during_training(grad_fn: GradFn, optimizer: optax.GradientTransformation,
                           epochs: int) -> Callable[[Params, Array, Array], tuple[Params, Array]]:
    """``run(params, x, y) -> (params, speeds)``: ``epochs`` steps of full-batch gradient descent
    (ch5).

    Each epoch is one update on all of (x, y), compiled as one `lax.scan`. speeds has
    shape (epochs + 1, hidden layers): row e is `layer_speeds` before epoch e's update
    (the gradient that update uses), the last row after the final one. ``grad_fn`` is the
    unregularised gradient; weight decay belongs to the optimiser (the bias gradients,
    and so the speeds, are the same with or without an L2 term).
    """
    if not (isinstance(epochs, int) and epochs >= 0):
        raise ValueError(f"epochs must be a non-negative integer, got {epochs!r}")

    def speeds_of(grads):
        return jnp.stack([jnp.linalg.norm(g["b"]) for g in grads[:-1]])

    @jax.jit
    def run(params, x, y):
        def body(carry, _):
            params, opt_state = carry
            grads = grad_fn(params, x, y)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), speeds_of(grads)

        (params, _), speeds = lax.scan(body, (params, optimizer.init(params)), None, length=epochs)
        return params, jnp.concatenate([speeds, speeds_of(grad_fn(params, x, y))[None]])

    return run


def chain_forward(w: Array, b: Array, x: Array) -> tuple[Array, Array]:
    """z_j and a_j of the chain x → σ(w_1 x + b_1) → … → a_L, one sigmoid neuron per layer (ch5)."""
    def layer(a, wb):
        z = wb[0] * a + wb[1]
        return sigmoid(z), (z, sigmoid(z))

    _, (zs, activations) = lax.scan(layer, jnp.asarray(x, jnp.result_type(w)),
                                    jnp.stack([w, b], axis=1))
    return zs, activations


def chain_factors(w: Array, b: Array, x: Array) -> Array:
    """The factors w_j σ′(z_j), j = 2 … L, whose products the bias gradients are."""
    zs, _ = chain_forward(w, b, x)
    return w[1:] * sigmoid_prime(zs[1:])


def chain_bias_gradients(w: Array, b: Array, x: Array, dC_da: Array) -> Array:
    """∂C/∂b_j = σ′(z_j) · Π_{k>j} w_k σ′(z_k) · ∂C/∂a_L for every layer j (ch5, eq. 121),
    given ∂C/∂a_L, the cost's derivative at the chain's output."""
    zs, _ = chain_forward(w, b, x)
    later = w[1:] * sigmoid_prime(zs[1:])  # factor k multiplies every earlier layer's gradient
    tail = jnp.concatenate([jnp.cumprod(later[::-1])[::-1], jnp.ones((1,), later.dtype)])
    return sigmoid_prime(zs) * tail * dC_da


def zero_z_biases(w: Array, x: float) -> Array:
    """Biases making every weighted input z_j = 0: b_1 = −w_1 x, b_j = −w_j σ(0) = −w_j/2 (ch5,
    exploding gradient)."""
    inputs = jnp.full(w.shape[0], 0.5, jnp.result_type(w)).at[0].set(x)  # a_{j−1}: x, then σ(0) = ½
    return -w * inputs


def large_gradient_width(w: Array) -> Array:
    """Width of the set of inputs a with |w σ′(w a + b)| ≥ 1, for any b (ch5, problem).

    σ′(z) = σ(1 − σ) ≥ 1/|w| holds for σ between the roots (1 ± r)/2, r = √(1 − 4/|w|),
    i.e. |z| ≤ ln((1 + r)/(1 − r)) = ln(|w|(1 + r)/2 − 1); as z = w a + b, a spans that
    interval divided by |w|. Empty (width 0) for |w| ≤ 4, where σ′ ≤ 1/4 never reaches 1/|w|.
    """
    w = jnp.abs(jnp.asarray(w))
    r = jnp.sqrt(jnp.clip(1.0 - 4.0 / jnp.maximum(w, 4.0), 0.0))
    return jnp.where(w > 4.0, 2.0 / w * jnp.log(w * (1.0 + r) / 2.0 - 1.0), 0.0)


def measured_width(w: float, b: float = 0.0, a: Array | None = None) -> Array:
    """The same width by brute force: the share of a fine grid of inputs a with
    |w σ′(w a + b)| ≥ 1, times the grid's span."""
    a = jnp.linspace(-2.0, 2.0, 400_001) - b / w if a is None else a
    return jnp.mean(jnp.abs(w * sigmoid_prime(w * a + b)) >= 1.0) * (a[-1] - a[0])
