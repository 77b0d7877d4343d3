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
# # Chapter 4: a visual proof that neural nets can compute any function
#
# The chapter's argument is a construction: sigmoid neurons with large weights are
# steps, pairs of steps are bumps, and enough bumps side by side follow any continuous
# function; with two inputs, bumps in $x$ and $y$ combine into towers. Nothing here is
# trained. `nnjax.universality` builds each network's weights and biases by hand, and
# `nnjax.approximation` places the pieces on a grid to approximate a given $f$. Every
# network is an ordinary `nnjax.network.Network` with a parameter pytree.
#
# Everything runs in seconds; `NNJAX_FULL=1` sweeps over more network sizes.

# %%
import os
from pathlib import Path

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Image

from experiments import ch4, common
from nnjax import activations, approximation, universality

FULL = os.environ.get("NNJAX_FULL", "0") == "1"
RESULTS = Path(common.__file__).resolve().parents[1] / "results"
x = jnp.linspace(0, 1, 1001)

# %% [markdown]
# ## Steps
#
# A hidden neuron with weighted input $wx + b$ outputs $\sigma(wx + b)$. As $w$ grows the
# curve sharpens into a step from 0 to 1 at $s = -b/w$. `universality.step` builds a
# [1, 1, 1] network whose output is that neuron read out linearly.

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for w in (10, 30, 100, 1000):
    ax.plot(x, universality.apply(universality.step(0.4, w=w), x[:, None]), label=f"w = {w}")
ax.set(xlabel="x", ylabel="output", title="σ(w x + b) with s = −b/w = 0.4")
ax.legend()
ax.grid(alpha=0.3)

# %% [markdown]
# ## Bumps
#
# Two steps, at $s_1 < s_2$, read out with weights $+h$ and $-h$, give a bump of height
# $h$ on $[s_1, s_2)$. Bumps side by side add up to a staircase with any heights we
# like; here is the weighted output $\sum_j w_j a_j$ of three bumps.

# %%
three = universality.bumps([0.1, 0.4, 0.7], [0.3, 0.6, 0.9], [0.6, -0.3, 0.9], w=300,
                           output=activations.LINEAR)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(x, universality.weighted_output(three, x[:, None]))
ax.set(xlabel="x", ylabel="weighted output", title=f"three bumps: {three.net.sizes} network, w = "
                                                   "300")
ax.grid(alpha=0.3)

# %% [markdown]
# ## Approximating a function
#
# The chapter's target is $f(x) = 0.2 + 0.4x^2 + 0.3x\sin(15x) + 0.05\cos(50x)$. The
# output neuron applies $\sigma$ to the weighted output, so the bumps are given heights
# $\sigma^{-1}(f)$ on each bin, and then $g = \sigma(\text{weighted output}) \approx f$.
# More bins (two hidden neurons each) follow $f$ more closely.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(x, ch4.f(x), "k", lw=2, label="f")
for n in (5, 20, 50):
    g = approximation.approximate_1d(ch4.f, n)
    err = approximation.abs_errors(g, ch4.f, x)
    ax.plot(x, universality.apply(g, x[:, None]), lw=1, label=f"{n} bumps: max |g − f| = "
                                                              f"{err['max']:.3f}")
ax.set(xlabel="x", title="g = σ(Σ bumps), heights σ⁻¹∘f at the bin midpoints")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)

# %% [markdown]
# How many hidden neurons does an error of at most 0.01 take? `experiments.ch4.sweep`
# measures the error for a range of sizes. Any activation with distinct limits at
# $\pm\infty$ makes steps, so the same construction works with tanh.

# %%
cfg = ch4.Ch4Config() if FULL else ch4.Ch4Config(sweep=(2, 5, 10, 20, 50, 100, 200), refine=False)
built = ch4.series(cfg)
fig, ax = plt.subplots(figsize=(6, 4))
for name in ("sigmoid", "tanh"):
    s = ch4.sweep(built[name], cfg, x)
    ax.plot(s["neurons"], s["max"], "o-", label=f"{name}: first ≤ {cfg.goal} at "
                                                f"{s['fewest_neurons']} neurons")
ax.axhline(cfg.goal, color="grey", ls="--", lw=1)
ax.set(xscale="log", yscale="log", xlabel="hidden neurons", ylabel="max |g − f|")
ax.legend()
ax.grid(alpha=0.3, which="both")

# %% [markdown]
# ## Two inputs: towers
#
# A bump in $x$ plus a bump in $y$ is 2 where both are on, 1 where one is, and 0
# elsewhere. A second hidden layer of neurons with a large weight and bias $\approx -3h/2$
# keeps only the region where both are on: a tower. A grid of towers, heights from
# $\sigma^{-1}(f)$ again, approximates a function of two variables, here the smooth
# $f_2(x, y)$ of `experiments.ch4`.

# %%
grid = ch4.grid_points(81)
tower = universality.towers([0.3, 0.6], [0.4, 0.7], [[1.0]], output=activations.LINEAR)
towers = approximation.tower_grid(ch4.f2, 10)
surfaces = [("one tower", universality.apply(tower, grid)), ("f2(x, y)",
                                                             ch4.f2(*np.asarray(grid).T)),
            (f"g: 10 × 10 towers, {towers.net.sizes}", universality.apply(towers, grid))]
fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
for ax, (title, z) in zip(axes, surfaces):
    im = ax.imshow(np.asarray(z).reshape(81, 81).T, origin="lower", extent=(0, 1, 0, 1))
    ax.set(title=title, xlabel="x", ylabel="y")
    fig.colorbar(im, ax=ax, fraction=0.046)

# %% [markdown]
# The saved full study (`python -m experiments.ch4`) adds ReLU and "wiggly" activations,
# networks trained by SGD for comparison, and the chapter's repair for the gaps where
# four towers meet: several shifted copies of the grid, each approximating $f/M$.

# %%
Image(RESULTS / "ch4_errors.png")

# %%
Image(RESULTS / "ch4_towers.png")
