"""Backpropagation by hand through convolutional and max-pooling layers (ch6, problem).

Chapter 2's equations for a fully connected layer (`nnjax.backprop`), with BP2 split in
two (the transpose step, then ⊙σ′, which the activation layer applies):

    BP1  δ^L = a^L − y                          (softmax with log-likelihood, ch3 eq. 84)
    BP2  δ^{l−1} = ((w^l)ᵀ δ^l) ⊙ σ′(z^{l−1})
    BP3  ∂C/∂b^l_j = δ^l_j
    BP4  ∂C/∂w^l_jk = a^{l−1}_k δ^l_j

and their twins for a conv layer z[i, j, f] = b_f + Σ_{p,q,c} w[p, q, c, f] a[i+p, j+q, c]
(one example; the sums also run over the mini-batch), where each shared weight collects
the error of every position it was used at:

    BP3c ∂C/∂b_f = Σ_{i,j} δ[i, j, f]
    BP4c ∂C/∂w[p, q, c, f] = Σ_{i,j} a[i+p, j+q, c] δ[i, j, f]     (patches(a)ᵀ δ: one matmul)
    BP2c ∂C/∂a[y, x, c] = Σ_{p,q,f} δ[y−p, x−q, f] w[p, q, c, f]
                        = a "full" convolution: δ zero-padded by k−1, kernel rotated 180°
                          with its channel axes swapped

and for a max-pooling layer, which has no parameters:

    BP2p ∂C/∂z[unit] = δ[its region] if the unit is its region's maximum, else 0

(the maximum is the first in row-major order when several units tie, so each region
passes its error to exactly one unit). `backprop` chains these over an architecture of
`nnjax.convnet` (no dropout); `make_grad` has the signature of `nnjax.convnet.make_grad`.
Tests check all of it against ``jax.grad`` and finite differences.
"""

import jax
import jax.numpy as jnp

from nnjax import activations, conv, convnet, layers

Array = jax.Array


def conv_backward(a: Array, w: Array, delta: Array, impl: str = "im2col") -> tuple[Array, Array, Array]:
    """(∂C/∂w, ∂C/∂b, ∂C/∂a) of a valid conv layer from its input a (m, H, W, C) and δ (m, H′, W′, F) (BP2c–BP4c)."""
    k, _, c, f = w.shape
    nabla_w = (conv.patches(a, k).reshape(-1, k * k * c).T @ delta.reshape(-1, f)).reshape(w.shape)  # BP4c
    nabla_b = jnp.sum(delta, axis=(0, 1, 2))  # BP3c
    padded = jnp.pad(delta, ((0, 0), (k - 1, k - 1), (k - 1, k - 1), (0, 0)))
    rotated = jnp.flip(w, axis=(0, 1)).transpose(0, 1, 3, 2)  # (k, k, F, C): rot180, channels swapped
    delta_a = conv.conv2d(padded, rotated, impl)  # BP2c
    return nabla_w, nabla_b, delta_a


def max_pool_backward(z: Array, delta: Array, size: int = 2) -> Array:
    """∂C/∂z of max-pooling z (m, H, W, C) from δ of its output (BP2p): δ goes to each region's first maximum."""
    m, h, w, c = z.shape
    regions = z.reshape(m, h // size, size, w // size, size, c)
    is_max = regions == conv.max_pool(z, size)[:, :, None, :, None, :]
    taken = jnp.zeros_like(is_max[:, :, 0, :, 0, :])
    rows = []
    for p in range(size):  # walk each region in row-major order; the first maximum takes δ
        cols = []
        for q in range(size):
            first = is_max[:, :, p, :, q, :] & ~taken
            taken = taken | first
            cols.append(first)
        rows.append(jnp.stack(cols, axis=3))
    mask = jnp.stack(rows, axis=2)
    return (mask * delta[:, :, None, :, None, :]).reshape(z.shape)


def _forward(params, x: Array, arch, impl: str) -> tuple[list[Array], Array]:
    """The evaluation pass, keeping each layer's input for the backward pass; returns (inputs, z^L)."""
    inputs, a = [], x
    for spec, p in zip(arch, params):
        inputs.append(a)
        kind = spec[0]
        if kind == "conv":
            a = layers.convolve(p, a, impl)
        elif kind == "pool":
            a = conv.max_pool(a, spec[1])
        elif kind == "act":
            a = activations.get(spec[1]).fn(a)
        elif kind == "flatten":
            a = a.reshape(a.shape[0], -1)
        elif kind in ("dense", "softmax"):
            a = layers.dense(p, a)
        else:
            raise ValueError(f"hand-derived backprop has no rule for layer {spec!r}; "
                             "it covers conv, pool, act, flatten, dense and softmax (use jax.grad for dropout)")
    return inputs, a


def backprop(params, x: Array, y: Array, arch, impl: str = "im2col"):
    """Σ_x ∇C_x of the log-likelihood cost over a mini-batch x, y (integer labels), by hand (ch2, ch6)."""
    inputs, z = _forward(params, x, arch, impl)
    delta = jax.nn.softmax(z, axis=-1) - jax.nn.one_hot(y, z.shape[-1], dtype=z.dtype)  # BP1
    grads = [()] * len(arch)
    for i in range(len(arch) - 1, -1, -1):
        kind, a = arch[i][0], inputs[i]
        if kind in ("dense", "softmax"):
            grads[i] = {"w": delta.T @ a, "b": jnp.sum(delta, axis=0)}  # BP4, BP3 summed over x
            if i > 0:
                delta = delta @ params[i]["w"]  # BP2's (w^l)ᵀ δ^l, row by row
        elif kind == "conv":
            nabla_w, nabla_b, delta = conv_backward(a, params[i]["w"], delta, impl)
            grads[i] = {"w": nabla_w, "b": nabla_b}
        elif kind == "pool":
            delta = max_pool_backward(a, delta, arch[i][1])
        elif kind == "act":
            delta = delta * activations.get(arch[i][1]).prime(a)  # BP2's ⊙ σ′(z)
        elif kind == "flatten":
            delta = delta.reshape(a.shape)
    return tuple(grads)


def make_grad(arch, *, lmbda: float = 0.0, n: int = 0, batch_size: int = 0, l2_scaling: str = "network3",
              impl: str = "im2col"):
    """``grad(params, x, y)``: the mean gradient of `nnjax.convnet.make_loss`'s cost, by hand.

    The L2 term s·(λ/2)·Σw² adds s·λ·w to each weight's gradient (see `nnjax.convnet`).
    """
    factor = convnet.l2_factor(lmbda, n, batch_size, l2_scaling)

    def grad(params, x, y):
        total = backprop(params, x, y, arch, impl)
        mean = jax.tree_util.tree_map(lambda g: g / x.shape[0], total)
        if not factor:
            return mean
        return tuple(
            {"w": g["w"] + 2 * factor * p["w"], "b": g["b"]} if g else g for g, p in zip(mean, params)
        )

    return grad
