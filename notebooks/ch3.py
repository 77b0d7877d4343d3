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
# # Chapter 3: improving the way neural networks learn
#
# Three of the chapter's ideas, run with `nnjax`: the cross-entropy cost, which removes
# the learning slowdown of a saturated output neuron; overfitting, and L2 regularisation
# against it; and how the learning rate $\eta$ changes training, with several values of
# $\eta$ trained side by side as one vmapped program (`nnjax.sweep`).
#
# By default the MNIST runs are short (a few thousand images, a few epochs); with
# `NNJAX_FULL=1` they use the book's settings. The figures from the full runs, saved in
# `results/`, are shown beside the live ones.

# %%
import dataclasses
import os
import tempfile
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
from IPython.display import Image

from experiments import ch3, ch3_plots, common
from nnjax import activations, backprop, costs, data, monitor, network, optim, train
from nnjax.network import Network

FULL = os.environ.get("NNJAX_FULL", "0") == "1"
RESULTS = Path(common.__file__).resolve().parents[1] / "results"
FIGURES = Path(tempfile.mkdtemp(prefix="nnjax-ch3-"))  # the live runs' figures
RUNS = {c.id: c for c in ch3.RUNS}

# %% [markdown]
# ## The learning slowdown, and the cross-entropy cost
#
# The chapter's toy example: one sigmoid neuron, input 1, desired output 0, starting
# from $w = b = 2$ (output $\approx 0.98$), trained with $\eta = 0.15$. With the
# quadratic cost the output error is $\delta = (a - y)\,\sigma'(z)$, and $\sigma'(z)$ is
# tiny where the neuron saturates, so it barely moves at first. With the cross-entropy
# the $\sigma'(z)$ cancels, $\delta = a - y$, and the worse the neuron's guess, the faster
# it learns.

# %%
x, y = jnp.ones((1, 1)), jnp.zeros((1, 1))
start = ({"w": jnp.array([[2.0]]), "b": jnp.array([2.0])},)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for ax, cost in zip(axes, (costs.QUADRATIC, costs.CROSS_ENTROPY)):
    neuron = Network((1, 1), activations.SIGMOID, activations.SIGMOID, cost)
    opt = optim.sgd(0.15)
    _, history = train.fit(train.make_epoch(backprop.make_grad(neuron), opt, batch_size=1),
                           train.State(start, opt.init(start), jax.random.key(0)), (x, y),
                           epochs=300, pieces=[monitor.Evaluate(partial(network.evaluate,
                               net=neuron), monitor_training=True)])
    ax.plot(history["training_cost"])
    ax.set(xlabel="epoch", ylabel="cost", title=f"{cost.name} cost, w = b = 2 at the start")
    ax.grid(alpha=0.3)

# %% [markdown]
# ## Overfitting
#
# Run 3c: [784, 30, 10] with the cross-entropy cost on only the first 1,000 training
# images. Accuracy on those images climbs towards 100%, while test accuracy stops
# improving and the test cost starts to rise: past that point the network is learning
# peculiarities of its 1,000 images rather than digits. The book trains for 400 epochs;
# the default here is 60, with the test accuracy and cost measured on 2,000 test images.

# %%
mnist = data.load_mnist()
cfg = RUNS["3c"] if FULL else dataclasses.replace(RUNS["3c"], epochs=60, eval_size=2000)
(overfit,) = ch3.network_records(cfg, mnist, n_seeds=1, verbose=False)
print(f"training accuracy reaches {overfit['training_accuracy_max']:.1f}%; "
      f"test cost is lowest after epoch {overfit['evaluation_cost_min_epoch']}")
Image(ch3_plots.overfitting(overfit, FIGURES / "overfitting.png", f"3c, {cfg.epochs} epochs"))

# %% [markdown]
# The saved full runs: 3c over 400 epochs, then 3e, the same network with L2
# regularisation ($\lambda = 0.1$), whose test accuracy keeps rising instead.

# %%
Image(RESULTS / "ch3_overfitting.png")

# %%
Image(RESULTS / "ch3_regularised.png")

# %% [markdown]
# ## Choosing the learning rate
#
# Run 3m: the training cost for $\eta$ = 0.025, 0.25 and 2.5. Too small and the cost
# falls slowly; too large and the steps overshoot the minimum, so the cost oscillates.
# `experiments.ch3.sweep_records` trains the three networks together: the learning
# rate is an array in the optimiser state, and one compiled program is vmapped over it.

# %%
sweep_cfg, name, etas = ch3.SWEEPS[0]
if not FULL:
    sweep_cfg = dataclasses.replace(sweep_cfg, epochs=8, train_size=3000, eval_size=500)
swept = ch3.sweep_records(sweep_cfg, name, etas, mnist, n_seeds=1, verbose=False)
Image(ch3_plots.multiple_eta({r["id"]: r for r in swept}, FIGURES / "multiple_eta.png"))

# %% [markdown]
# The same comparison over 30 epochs on all 50,000 images, from `results/`:

# %%
Image(RESULTS / "ch3_multiple_eta.png")
