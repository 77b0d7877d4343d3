"""Chapter 3's figures, drawn from a saved ch3.json (never retrains).

    python -m experiments.ch3_plots [results/ch3.json]

Writes PNGs next to the JSON: ch3_overfitting.png (3c), ch3_regularised.png (3e),
ch3_l1.png (ours: 3e with L1), ch3_init.png (3k, 3l), ch3_multiple_eta.png (3m),
ch3_more_data.png (3i, 3j) and ch3_ours.png (momentum, η schedule, early stopping,
tanh and ReLU, L1 on 50,000 images). A figure whose records are missing is skipped.
"""

import sys
from pathlib import Path

import numpy as np

from experiments.plotting import load_records, plt, save


def percent(counts, n):
    return 100.0 * np.asarray(counts, dtype=float) / n


def tidy(a, fontsize=None, loc="best") -> None:
    """Grid, and a legend only where something was drawn."""
    if a.get_legend_handles_labels()[0]:
        a.legend(fontsize=fontsize, loc=loc)
    a.grid(alpha=0.3)


def mean_curve(record: dict, key: str, as_percent: bool = False, size: str = "n_eval"):
    """The per-epoch mean over seeds of a history series (seeds may stop at different epochs)."""
    runs = [np.asarray(percent(r["history"][key], r[size]) if as_percent else r["history"][key],
                       float)
            for r in record["per_seed"]]
    length = min(len(r) for r in runs)
    return np.arange(length), np.mean([r[:length] for r in runs], axis=0)


def overfitting(record: dict, path: Path, title: str) -> Path:
    """The book's four overfitting panels: training cost, test accuracy, test cost, training
    accuracy."""
    r = record["per_seed"][0]
    h, epochs = r["history"], np.arange(len(r["history"]["epoch"]))
    fig, ax = plt.subplots(2, 2, figsize=(10, 7))
    panels = [(h["training_cost"], "cost on the training data"),
              (percent(h["evaluation_accuracy"], r["n_eval"]), "accuracy (%) on the test data"),
              (h["evaluation_cost"], "cost on the test data"),
              (percent(h["training_accuracy"], r["n_train"]), "accuracy (%) on the training data")]
    for a, (y, label) in zip(ax.flat, panels):
        a.plot(epochs, y, lw=1)
        a.set(xlabel="epoch", title=label)
        a.grid(alpha=0.3)
    fig.suptitle(f"{title}  (peak test accuracy {record['best']:.2f}%)")
    return save(fig, path)


def init_comparison(records: dict, path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for a, net in zip(axes, ("3k", "3l")):
        for style, kind in (("-", "default"), ("--", "large")):
            rec = records.get(f"{net}/{kind}")
            if rec:
                x, y = mean_curve(rec, "evaluation_accuracy", as_percent=True)
                a.plot(x + 1, y, style, label=f"{kind} init (mean of {len(rec['per_seed'])})")
        hidden = "30" if net == "3k" else "100"
        a.set(xlabel="epoch", ylabel="validation accuracy (%)", title=f"{net}: [784, {hidden}, "
                                                                      "10], η 0.1, λ 5")
        tidy(a)
    return save(fig, path)


def multiple_eta(records: dict, path: Path) -> Path:
    fig, a = plt.subplots(figsize=(6.5, 4.2))
    for id_, rec in records.items():
        if id_.startswith("3m/"):
            x, y = mean_curve(rec, "training_cost", size="n_train")
            a.plot(x + 1, y, label=f"η = {rec['config']['eta']}")
    a.set(xlabel="epoch", ylabel="training cost (with L2 term)", title="3m: [784, 30, 10], λ 5, "
                                                                       "default init")
    tidy(a)
    return save(fig, path)


def more_data(records: dict, path: Path) -> Path:
    fig, a = plt.subplots(figsize=(6.5, 4.2))
    for id_, label in (("3i", "neural network [784, 30, 10]"), ("3j", "SVM (SVC, RBF)")):
        if id_ in records:
            c = records[id_]["curve"]
            a.plot([p["n"] for p in c], [p["accuracy"] for p in c], "o-", label=label)
    a.set(xscale="log", xlabel="training set size N", ylabel="validation accuracy (%)",
          title="more data")
    a.legend()
    a.grid(alpha=0.3, which="both")
    return save(fig, path)


def ours(records: dict, path: Path) -> Path:
    """Our own numbers: momentum, η schedule, early stopping, hidden activations, L1 vs L2."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    a = axes[0, 0]
    for id_, rec in records.items():
        if id_.startswith("X-momentum/"):
            x, y = mean_curve(rec, "evaluation_accuracy", as_percent=True)
            a.plot(x + 1, y, label=f"μ = {rec['config']['momentum']}")
    a.set(title="momentum (validation, η 0.1, λ 5)", ylim=(90, 98.5))
    a = axes[0, 1]
    rec = records.get("X-eta-schedule")
    if rec:
        for r in rec["per_seed"]:
            a.plot(np.arange(len(r["accuracy"])) + 1, r["accuracy"], lw=1,
                   label=f"seed {r['seed']}")
        twin = a.twinx()
        r = rec["per_seed"][0]
        twin.step(np.arange(len(r["accuracy"])) + 1, r["history"]["learning_rate"], "k:",
                  where="post")
        twin.set(yscale="log", ylabel="η (seed 0, dotted)")
    a.set(title="η schedule: halve at no-improvement-in-10", ylim=(94, 97.5))
    a = axes[1, 0]
    rec = records.get("X-early-stopping")
    if rec:
        for r in rec["per_seed"]:
            a.plot(np.arange(len(r["accuracy"])) + 1, r["accuracy"], lw=1,
                   label=f"seed {r['seed']}: stopped after {len(r['accuracy'])} epochs")
    a.set(title="early stopping: no-improvement-in-10", ylim=(94, 97.5))
    a = axes[1, 1]
    for id_, label in (("3k/default", "sigmoid"), ("X-tanh", "tanh"), ("X-relu", "ReLU"),
                       ("3f", "L2 (3f, large init, η 0.5)"), ("X-L1/50k", "L1 (3f setting)")):
        if id_ in records:
            x, y = mean_curve(records[id_], "evaluation_accuracy", as_percent=True)
            a.plot(x + 1, y, "--" if id_ in ("3f", "X-L1/50k") else "-", label=label)
    a.set(title="hidden activation (validation, η 0.1, λ 5); L2 vs L1 (test)", ylim=(90, 98.5))
    for a in axes.flat:
        a.set(xlabel="epoch", ylabel="accuracy (%)")
        tidy(a, fontsize=8, loc="lower right")
    return save(fig, path)


def plot_all(json_path) -> list[Path]:
    """Every chapter-3 figure whose records are in ``json_path``; returns the PNG paths written."""
    records, out = load_records(json_path)
    written = []
    for id_, name, title in (("3c", "overfitting", "3c: [784,30,10] on 1,000 images, λ = 0"),
                             ("3e", "regularised", "3e: [784,30,10] on 1,000 images, L2 λ = 0.1"),
                             ("X-L1/1000", "l1", "ours: [784,30,10] on 1,000 images, L1 λ = 0.1")):
        if id_ in records:
            written.append(overfitting(records[id_], out / f"ch3_{name}.png", title))
    if any(k.startswith(("3k/", "3l/")) for k in records):
        written.append(init_comparison(records, out / "ch3_init.png"))
    if any(k.startswith("3m/") for k in records):
        written.append(multiple_eta(records, out / "ch3_multiple_eta.png"))
    if "3i" in records or "3j" in records:
        written.append(more_data(records, out / "ch3_more_data.png"))
    if any(k.startswith("X-") for k in records):
        written.append(ours(records, out / "ch3_ours.png"))
    return written


if __name__ == "__main__":
    for p in plot_all(sys.argv[1] if len(sys.argv) > 1 else "results/ch3.json"):
        print(f"wrote {p}")
