# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: -all
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 2: how the backpropagation algorithm works
#
# The chapter derives four equations that give every partial derivative of the cost in
# one backward sweep through the network. `nnjax.backprop` writes them out by hand;
# `nnjax.autodiff` gets the same gradient from `jax.grad`. This notebook checks that
# the two agree, checks both against finite differences, and measures why the chapter
# calls backpropagation fast.
#
# The default settings run in seconds; `NNJAX_FULL=1` times the finite differences on
# the book's [784, 30, 10] network and on larger ones.

# %%
import os
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
from jax.flatten_util import ravel_pytree

from experiments import ch2, common
from experiments.plotting import load_records
from nnjax import autodiff, backprop, data, init, network
from nnjax.network import Network

FULL = os.environ.get("NNJAX_FULL", "0") == "1"
RESULTS = Path(common.__file__).resolve().parents[1] / "results"

# %% [markdown]
# ## The four equations
#
# With $z^l = w^l a^{l-1} + b^l$, $a^l = \sigma(z^l)$ and the error $\delta^l = \partial C/\partial
# z^l$:
#
# - BP1: $\delta^L = \nabla_a C \odot \sigma'(z^L)$
# - BP2: $\delta^l = ((w^{l+1})^T \delta^{l+1}) \odot \sigma'(z^l)$
# - BP3: $\partial C/\partial b^l_j = \delta^l_j$
# - BP4: $\partial C/\partial w^l_{jk} = a^{l-1}_k \delta^l_j$
#
# `backprop.backprop` applies them to one example. For one MNIST digit and the book's
# [784, 30, 10] network, the gradient has the shapes of the parameters: $w$ is
# $(n_\text{out}, n_\text{in})$ as in the book.

# %%
mnist = data.load_mnist()
net = Network(ch2.SIZES)
params = init.init_params(jax.random.key(0), net.sizes, init.large)
x, y = jnp.asarray(mnist.training.x[:10]), jnp.asarray(mnist.training.y[:10])
one = jax.jit(partial(backprop.backprop, net=net))(params, x[0], network.targets(y[:1], 10)[0])
print([{k: v.shape for k, v in layer.items()} for layer in one])
print("parameters:", network.num_params(params))

# %% [markdown]
# ## Backpropagation against `jax.grad`
#
# Three routes to the mean gradient over a mini-batch of 10 images: the book's
# per-example algorithm (vmapped over the batch), the fully matrix-based form of the
# chapter's problem, and automatic differentiation of the cost. In float64 they agree
# to rounding error. (Each is compiled with `jax.jit` first: one compiled program runs
# much faster than JAX executing the operations one by one.)

# %%
with jax.enable_x64(True):
    p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
    x64 = x.astype(jnp.float64)
    per_example = ravel_pytree(jax.jit(backprop.make_grad(net, "example"))(p64, x64, y))[0]
    matrix = ravel_pytree(jax.jit(backprop.make_grad(net, "matrix"))(p64, x64, y))[0]
    auto = ravel_pytree(jax.jit(autodiff.make_grad(net))(p64, x64, y))[0]
    scale = jnp.max(jnp.abs(matrix))
    print("max |per-example − matrix| / max |∇C| = "
          f"{jnp.max(jnp.abs(per_example - matrix)) / scale:.1e}")
    print(f"max |jax.grad − matrix|    / max |∇C| = {jnp.max(jnp.abs(auto - matrix)) / scale:.1e}")

# %%
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.plot(matrix, auto, ".", ms=2)
ax.set(xlabel="∂C/∂θ by BP1–BP4", ylabel="∂C/∂θ by jax.grad", title=f"all {matrix.size:,} partial "
                                                                    "derivatives")
ax.grid(alpha=0.3)

# %% [markdown]
# ## Finite differences
#
# Before backpropagation, the obvious way to get $\partial C/\partial w_j$ is to nudge
# one weight and look at the cost: $(C(w + \epsilon e_j) - C(w))/\epsilon$. The estimate
# is close to the exact gradient (an $O(\epsilon)$ error), but it needs one more forward
# pass for every single parameter. By default this cell uses a narrower hidden layer to
# stay quick.

# %%
fd_net = net if FULL else Network((784, 5, 10))
fd_params = init.init_params(jax.random.key(0), fd_net.sizes, init.large)
with jax.enable_x64(True):
    fd_p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), fd_params)
    estimate = ch2.finite_difference_gradient(fd_p64, x.astype(jnp.float64), y, fd_net, eps=1e-6)
    exact = ravel_pytree(jax.jit(backprop.make_grad(fd_net))(fd_p64, x.astype(jnp.float64), y))[0]
    print(f"{list(fd_net.sizes)}: max |FD − backprop| / max |∇C| = "
          f"{jnp.max(jnp.abs(estimate - exact)) / jnp.max(jnp.abs(exact)):.1e}")

# %% [markdown]
# ## Why backpropagation is fast
#
# Backpropagation costs one forward and one backward pass, roughly the work of two
# forward passes, however many parameters $P$ there are; finite differences cost $P + 1$
# forward passes. For [784, h, 10] both $P$ and the cost of one forward
# pass grow with $h$, so the finite-difference gradient grows like $h^2$ while
# backpropagation grows like $h$. Timed here on one mini-batch of 10 images (compiled,
# best of several calls):

# %%
hidden = (5, 10, 20, 30, 50) if FULL else (2, 4, 8)
timings = []
for h in hidden:
    net_h = Network((784, h, 10))
    p_h = init.init_params(jax.random.key(0), net_h.sizes, init.large)
    fd_s = ch2.timed(jax.jit(partial(ch2.finite_difference_gradient, net=net_h, eps=1e-3)), p_h, x,
                     y, repeats=2)[1]
    bp_s = ch2.timed(jax.jit(backprop.make_grad(net_h)), p_h, x, y, repeats=50)[1]
    timings.append((network.num_params(p_h), fd_s, bp_s))
    print(f"[784, {h}, 10]: {timings[-1][0]:>6,} parameters, finite differences {fd_s * 1e3:8.2f} "
          f"ms, backprop {bp_s * 1e6:6.1f} µs ({fd_s / bp_s:,.0f}×)")

# %%
sizes, fd_times, bp_times = zip(*timings)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(sizes, fd_times, "o-", label="finite differences")
ax.plot(sizes, bp_times, "s-", label="backpropagation")
ax.set(xscale="log", yscale="log", xlabel="parameters P", ylabel="seconds per gradient",
       title="one gradient of [784, h, 10] on 10 images")
ax.legend()
ax.grid(alpha=0.3, which="both")

# %% [markdown]
# `python -m experiments.ch2` makes the same measurement on [784, 30, 10] and saves it:

# %%
saved, _ = load_records(RESULTS / "ch2.json")
speed = saved["2-speed"]
print(f"finite differences {speed['finite_difference_s']:.2f} s, backprop "
      f"{speed['backprop_s'] * 1e6:.0f} µs: {speed['best']:,.0f}× ({speed['note']})")
