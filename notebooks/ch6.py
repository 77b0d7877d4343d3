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
# # Chapter 6: deep learning
#
# Convolutional networks build the image's geometry into the architecture: each hidden
# neuron of a convolutional layer looks at a 5×5 local receptive field, all neurons of a
# feature map share one set of weights (a filter), and max-pooling keeps the strongest
# response in each 2×2 region. This notebook trains the chapter's network 6f,
# conv20 → conv40 → FC100 → softmax with ReLU neurons, as `network3.py` would, then
# looks at the filters it learned and the digits it gets wrong.
#
# By default it trains for 2 epochs on 2,000 images and evaluates on 1,000, which takes
# seconds. `NNJAX_FULL=1` runs the book's 6f: 60 epochs on all 50,000 images, hours on
# a CPU (a GPU is the place for it).

# %%
import dataclasses
import os
import tempfile
from pathlib import Path

from IPython.display import Image

from experiments import ch6, ch6_plots
from experiments.plotting import load_records
from nnjax import data

FULL = os.environ.get("NNJAX_FULL", "0") == "1"
FIGURES = Path(tempfile.mkdtemp(prefix="nnjax-ch6-"))  # the live run's figures
RUNS = {c.id: c for c in ch6.RUNS}

# %% [markdown]
# ## The network
#
# An architecture is plain data, a tuple of layer specs (`nnjax.convnet`); `convnet.build`
# turns it into an `(init, apply)` pair. Training uses `jax.grad` of network3's cost:
# the log-likelihood of a softmax output layer plus an L2 term, $\eta = 0.03$,
# $\lambda = 0.1$, mini-batches of 10.

# %%
cfg = RUNS["6f"] if FULL else dataclasses.replace(RUNS["6f"], epochs=2, train_size=2000,
                                                  eval_size=1000)
for spec in cfg.arch():
    print(spec)

# %% [markdown]
# ## Training
#
# After every epoch the network is scored on the validation and the test images; the
# result reported, as in the book, is the test accuracy at the epoch of best validation
# accuracy.

# %%
mnist = data.load_mnist()
record, arrays = ch6.run(cfg, ch6.prepare_data(cfg, mnist), seeds=[0])
filters = arrays["filters"]
print(f"test accuracy at the best validation epoch: {record['best']:.2f}% (book, full run: "
      f"{cfg.book}%)")

# %% [markdown]
# ## The learned filters
#
# In the first layer each 5×5 tile is one feature map's filter; in the second, each
# column is one feature map, with one filter (row) for each of the 20 maps it reads.
# Dark means a large weight. After a short run they are
# still mostly noise; the book notes that even fully trained filters are hard to read,
# beyond some clear spatial structure.

# %%
Image(ch6_plots.plot_filters(filters, cfg.id, FIGURES / "filters.png"))

# %% [markdown]
# ## What it gets wrong
#
# The first 33 misclassified test images, each titled "true → predicted". The fully
# trained ensemble in the book misses only 33 of all 10,000 test images, and many of
# those would puzzle a person too; this briefly trained network still confuses digits
# that are easy to read.

# %%
Image(ch6_plots.plot_errors(record, mnist.test.x, FIGURES / "errors.png", most=33))

# %% [markdown]
# The book's best networks also train on expanded data: each training image and its
# four shifts by one pixel, 250,000 images (`nnjax.expand`, the `expand` field of the
# config, and `python -m experiments.ch6_plots` for a picture of the expansions).

# %% [markdown]
# ## The full runs, from the saved results
#
# `python -m experiments.ch6` trains the chapter's networks at the book's settings and
# saves each row in `results/ch6.json`, with the errors of its best network. Here are
# the rows run so far against the book, and the errors of the best of them, read from
# the files rather than retrained.

# %%
SAVED = Path(ch6.__file__).resolve().parents[1] / "results" / "ch6.json"
saved, _ = load_records(SAVED)
for r in saved.values():
    print(f"{r['id']}: ours {r['best']:.2f}% (best of {len(r['seeds'])}), book {r['book']}%  "
          f"{r['note']}")
best = max(saved.values(), key=lambda r: r["best"])
Image(ch6_plots.plot_errors(best, mnist.test.x, FIGURES / "saved_errors.png"))
