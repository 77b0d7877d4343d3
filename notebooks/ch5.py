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
# # Chapter 5: why are deep neural networks hard to train?
#
# Adding hidden layers to the chapter-3 network barely helps its accuracy. The chapter
# finds the reason in the gradient: the error $\delta^l$ shrinks as backpropagation
# carries it towards the input, so the early layers learn far more slowly than the late
# ones. The chain network, one neuron per layer, shows why: each layer multiplies the
# gradient by a factor $w_j \sigma'(z_j)$, usually smaller than 1 in size.
#
# By default the speeds are followed for 60 epochs of gradient descent; `NNJAX_FULL=1`
# runs the book's 500.

# %%
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image

from experiments import ch5, ch5_plots, common
from nnjax import data, unstable_gradient

FULL = os.environ.get("NNJAX_FULL", "0") == "1"
RESULTS = Path(common.__file__).resolve().parents[1] / "results"

# %% [markdown]
# ## Deeper is not better, yet
#
# The saved runs 5a–5d: [784, 30, 10] with one to four hidden layers of 30 neurons
# (network2.py's settings: cross-entropy, $\eta = 0.1$, $\lambda = 5$, 30 epochs).

# %%
Image(RESULTS / "ch5_accuracy.png")

# %% [markdown]
# ## The speed of learning, layer by layer
#
# Since $\partial C/\partial b^l_j = \delta^l_j$ (BP3), the length $\|\delta^l\|$ of the
# bias gradient of hidden layer $l$ measures how fast that layer is learning.
# `nnjax.unstable_gradient.speeds_during_training` records it for every hidden layer
# through full-batch gradient descent on the first 1,000 training images.
# `experiments.ch5.run_speeds` does this for 2, 3 and 4 hidden layers, starting from
# the default initialisation $N(0, 1/n_\text{in})$.

# %%
cfg = ch5.SpeedConfig() if FULL else ch5.SpeedConfig(epochs=60)
mnist = data.load_mnist()
x, y = jnp.asarray(mnist.training.x[:cfg.images]), jnp.asarray(mnist.training.y[:cfg.images])
speeds = {r["id"]: r for r in ch5.run_speeds(cfg, x, y, seeds=[0], ids={"5e", "5f"}, verbose=False)}

# %% [markdown]
# At the start, each hidden layer learns several times more slowly than the one after
# it, as the book reports (its values are the crosses):

# %%
for depth, t in speeds["5e"]["speeds_at_init"].items():
    print(f"{depth} hidden layers: ours", ", ".join(f"{v:.3f}" for v in t["mean"]),
          "| book", ", ".join(f"{v:.3f}" for v in t["book"]))

# %% [markdown]
# and the gap persists through training:

# %%
depths = [k for k in speeds if k.startswith("5f ")]
fig, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 3.8))
for ax, id_ in zip(axes, depths):
    ch5_plots.speed_curves(ax, speeds[id_]["per_seed"], f"{id_[3:]}: last/first "
                                                        f"{speeds[id_]['mean']:.0f}× at the end")
fig.tight_layout()

# %% [markdown]
# ## The chain network: vanishing and exploding gradients
#
# In a chain $x \to a_1 \to \dots \to a_5$ of sigmoid neurons,
#
# $$\frac{\partial C}{\partial b_1} = \sigma'(z_1)\; w_2\sigma'(z_2)\; w_3\sigma'(z_3)\;
# w_4\sigma'(z_4)\; w_5\sigma'(z_5)\; \frac{\partial C}{\partial a_5}.$$
#
# With weights from $N(0, 1)$ the factors $w_j\sigma'(z_j)$ are nearly always smaller
# than 1 in size, and usually smaller than 1/4 ($\sigma'$ is at most 1/4), so the
# gradient shrinks several-fold per layer. With every $w_j = 100$ and biases chosen so
# every $z_j = 0$, each factor is $100 \cdot \sigma'(0) = 25$ and the gradient explodes
# instead. Either way, the layers learn at very different speeds.

# %%
k_w, k_b, k_x = jax.random.split(jax.random.key(0), 3)
n_chains, length = 1000, 5
w = jax.random.normal(k_w, (n_chains, length))
b = jax.random.normal(k_b, (n_chains, length))
inputs = jax.random.uniform(k_x, (n_chains,))
chain_grads = jax.jit(jax.vmap(unstable_gradient.chain_bias_gradients, in_axes=(0, 0, 0, None)))
random_grads = chain_grads(w, b, inputs, 1.0)
big = jnp.full((1, length), 100.0)
exploding = chain_grads(big, unstable_gradient.zero_z_biases(big[0], 0.5)[None], jnp.array([0.5]),
                        1.0)[0]

fig, ax = plt.subplots(figsize=(6, 4))
layers = np.arange(1, length + 1)
ax.plot(layers, jnp.median(jnp.abs(random_grads), axis=0), "o-", label="w, b ~ N(0, 1): median of "
                                                                       f"{n_chains} chains")
ax.plot(layers, jnp.abs(exploding), "s-", label="every w = 100, every z = 0")
ax.set(yscale="log", xlabel="layer j", ylabel="|∂C/∂b_j|", xticks=layers, title="bias gradients "
                                                                                "along a chain")
ax.legend()
ax.grid(alpha=0.3, which="both")

# %% [markdown]
# Could a large weight avoid vanishing? Only if $|w\sigma'(wa + b)| \ge 1$, and a large
# $w$ also makes $\sigma'$ small unless $wa + b$ is near 0. The chapter's problem: the
# inputs $a$ for which the factor reaches 1 form an interval of width at most about 0.45.

# %%
ws = jnp.linspace(0.0, 30.0, 3001)
widths = unstable_gradient.large_gradient_width(ws)
i = int(jnp.argmax(widths))
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ws, widths)
ax.plot(ws[i], widths[i], "ro", label=f"largest: {widths[i]:.3f} at |w| = {ws[i]:.2f}")
ax.set(xlabel="|w|", ylabel="width of {a : |w σ′(wa + b)| ≥ 1}")
ax.legend()
ax.grid(alpha=0.3)

# %% [markdown]
# Beyond the book, from the saved runs: tanh and ReLU hidden layers, and variance-scaled
# initialisations, with four hidden layers. ReLU networks turn the imbalance around:
# there the first hidden layer learns fastest.

# %%
Image(RESULTS / "ch5_beyond.png")
