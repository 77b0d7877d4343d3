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
# # Chapter 1: using neural nets to recognize handwritten digits
#
# The chapter builds up from a single perceptron to a three-layer network of sigmoid
# neurons, [784, 30, 10], trained by mini-batch stochastic gradient descent on MNIST.
# This notebook runs the same steps with `nnjax`.
#
# By default it trains on 10,000 images for 5 epochs, so it finishes in seconds; set
# `NNJAX_FULL=1` in the environment before starting the kernel for the book's run (all
# 50,000 training images, 30 epochs).

# %%
import dataclasses
import os
from pathlib import Path

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import ch1, common
from experiments.plotting import load_records
from nnjax import activations, data

FULL = os.environ.get("NNJAX_FULL", "0") == "1"
RESULTS = Path(common.__file__).resolve().parents[1] / "results"

# %% [markdown]
# ## Perceptrons and sigmoid neurons
#
# A perceptron outputs 1 when its weighted input $z = w \cdot x + b$ is positive and 0
# otherwise. With weights $(-2, -2)$ and bias $3$ it is a NAND gate, so networks of
# perceptrons can compute any logical function:

# %%
x = jnp.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=jnp.float32)
z = x @ jnp.array([-2.0, -2.0]) + 3.0
for inputs, out in zip(x.astype(int).tolist(), (z > 0).astype(int).tolist()):
    print(inputs, "->", out)

# %% [markdown]
# Learning needs a small change in a weight to make a small change in the output. The
# perceptron's step jumps from 0 to 1; the sigmoid neuron's $\sigma(z) = 1/(1+e^{-z})$
# is a smoothed step, so the output moves continuously with $w$ and $b$.

# %%
z = jnp.linspace(-6, 6, 601)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(z, jnp.heaviside(z, 1.0), label="perceptron: step function")
ax.plot(z, activations.sigmoid(z), label=r"sigmoid neuron: $\sigma(z)$")
ax.set(xlabel="weighted input z", ylabel="output")
ax.legend(loc="lower right")
ax.grid(alpha=0.3)

# %% [markdown]
# ## The MNIST data
#
# `nnjax.data.load_mnist` gives the book's split: 50,000 training, 10,000 validation and
# 10,000 test images, each a row of 784 greyscale values in $[0, 1]$, with integer labels.
# It reads the files from the folder named by the `NNJAX_DATA_DIR` environment variable
# (or downloads them once into a cache).

# %%
mnist = data.load_mnist()
print({name: split.x.shape for name, split in mnist._asdict().items()})
fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for ax, image, label in zip(axes, mnist.training.x, mnist.training.y):
    ax.imshow(image.reshape(28, 28), cmap="Greys")
    ax.set_title(int(label))
    ax.axis("off")

# %% [markdown]
# ## Training [784, 30, 10] by stochastic gradient descent
#
# Run 1a of the book: sigmoid neurons, the quadratic cost
# $C = \frac{1}{2n}\sum_x \|y(x) - a\|^2$, weights and biases drawn from $N(0, 1)$,
# mini-batches of $m = 10$ and $\eta = 3.0$. Each epoch is one compiled program; after
# each, the network classifies the 10,000 test images and prints the count it gets
# right, as `network.py` does.

# %%
cfg = ch1.RUNS[0] if FULL else dataclasses.replace(ch1.RUNS[0], epochs=5, train_size=10_000)
(run,) = common.run_seeds(cfg, mnist, seeds=[0])

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
epochs = np.arange(1, len(run["accuracy"]) + 1)
ax.plot(epochs, run["accuracy"], "o-", label=f"ours, {run['n_train']:,} training images")
ax.axhline(cfg.book, color="grey", ls=":", label=f"book's peak ({cfg.book}%)")
ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="[784, 30, 10], η = 3.0")
ax.legend()
ax.grid(alpha=0.3)

# %% [markdown]
# ## The full run, from the saved results
#
# `python -m experiments.ch1` trains the same network on all 50,000 images for 30 epochs
# and saves every epoch's accuracy in `results/ch1.json`. Here are those runs, one line
# per seed, read from the file rather than retrained.

# %%
saved, _ = load_records(RESULTS / "ch1.json")
full = saved["1a"]
fig, ax = plt.subplots(figsize=(6, 3.5))
for r in full["per_seed"]:
    ax.plot(np.arange(1, len(r["accuracy"]) + 1), r["accuracy"], lw=1, alpha=0.7)
ax.axhline(full["book"], color="grey", ls=":", label=f"book's peak ({full['book']}%)")
ax.set(xlabel="epoch", ylabel="test accuracy (%)", ylim=(90, 96),
       title=f"1a: {len(full['per_seed'])} seeds, best peak {full['best']:.2f}%")
ax.legend()
ax.grid(alpha=0.3)

# %% [markdown]
# For comparison, the chapter's baselines from the same file: guessing at random,
# classifying by a digit's average darkness, and a support vector machine.

# %%
for id_ in ("B1", "B2", "B3"):
    print(f"{id_}: {saved[id_]['best']:.2f}%  ({saved[id_]['note']})")
