"""Chapter 5's figures, drawn from a saved ch5.json (never retrains).

    python -m experiments.ch5_plots [results/ch5.json]

Writes PNGs next to the JSON: ch5_accuracy.png (5a–5d), ch5_speed_init.png (5e),
ch5_speed_training.png (5f), ch5_beyond.png (5h: tanh, ReLU, other initialisations)
and ch5_chain.png (5g). Speeds are on a log scale. A figure whose records are missing
is skipped.
"""

import sys
from pathlib import Path

import numpy as np

from experiments.plotting import load_records, plt, save


def speed_curves(a, runs: list[dict], title: str) -> None:
    """Mean over seeds of each hidden layer's speed against the epoch, log scale."""
    speeds = np.mean([np.asarray(r["speeds"]) for r in runs], axis=0)  # (epochs + 1, layers)
    for l in range(speeds.shape[1]):
        a.plot(speeds[:, l], label=f"hidden layer {l + 1}")
    a.set(yscale="log", xlabel="epoch", ylabel=r"$\|\delta^l\|$", title=title)
    a.legend(fontsize=7)
    a.grid(alpha=0.3, which="both")


def accuracy(records: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, id_ in enumerate(k for k in ("5a", "5b", "5c", "5d") if k in records):
        r = records[id_]
        acc = np.asarray([s["accuracy"] for s in r["per_seed"]])
        color = f"C{i}"
        ax.plot(acc.mean(axis=0), color=color, label=f"{id_} {r['config']['sizes']}: best "
                                                     f"{r['best']:.2f}%")
        ax.fill_between(range(acc.shape[1]), acc.min(axis=0), acc.max(axis=0), color=color,
                        alpha=0.15)
        if r["book"] is not None:
            ax.axhline(r["book"], color=color, ls=":", lw=1)
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", ylim=(94, 98),
           title="network2, η 0.1, λ 5.0 (mean, band = seed range; dotted: book)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def speed_init(records: dict, path: Path) -> Path:
    table = records["5e"]["speeds_at_init"]
    fig, ax = plt.subplots(1, len(table), figsize=(4.5 * len(table), 4))
    for a, (depth, t) in zip(np.atleast_1d(ax), table.items()):
        layers = np.arange(1, len(t["mean"]) + 1)
        a.errorbar(layers, t["mean"], yerr=t["std"], fmt="o-", label="ours (mean ± std)")
        a.plot(layers, t["book"], "kx", ms=9, label="book")
        a.set(yscale="log", xlabel="hidden layer", ylabel=r"$\|\delta^l\|$ at init",
              title=f"{depth} hidden layers", xticks=layers)
        a.legend(fontsize=8)
        a.grid(alpha=0.3, which="both")
    return save(fig, path)


def speed_training(records: dict, path: Path) -> Path:
    ids = [k for k in records if k.startswith("5f ")]
    fig, ax = plt.subplots(1, len(ids), figsize=(5 * len(ids), 4), squeeze=False)
    for a, id_ in zip(ax.flat, ids):
        r = records[id_]
        speed_curves(a, r["per_seed"], f"{id_[3:]}: last/first {r['mean']:.0f}× at the end")
    return save(fig, path)


def beyond(records: dict, path: Path) -> Path:
    """5h's variants beside the book's network (sigmoid, default init: 5f at the same depth)."""
    variants = [k for k in records if k.startswith("5h ")]
    depth = records[variants[0]]["per_seed"][0]["depth"]
    ids = [k for k in (f"5f {depth} hidden",) if k in records] + variants
    cols = min(len(ids), 2)
    rows = -(-len(ids) // cols)
    fig, ax = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), squeeze=False)
    for a, id_ in zip(ax.flat, ids):
        r = records[id_]
        name = id_[3:] if id_.startswith("5h ") else "sigmoid/default (5f)"
        at_init = r["note"].split(";")[0]
        speed_curves(a, r["per_seed"]
                     , f"{name}: last/first {r['mean']:.3g}× at the end ({at_init})")
    for a in ax.flat[len(ids):]:
        a.axis("off")
    return save(fig, path)


def chain(records: dict, path: Path) -> Path:
    r = records["5g"]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    ax[0].plot(r["width_curve"]["w"], r["width_curve"]["width"])
    ax[0].plot([r["w_star"]], [r["best"]], "ro", label=f"largest: {r['best']:.4f} at |w| = "
                                                       f"{r['w_star']:.3f}")
    ax[0].set(xlabel="|w|", ylabel="width of {a : |w σ′(wa + b)| ≥ 1}", title="where a factor w σ′ "
                                                                              "can exceed 1")
    ax[0].legend(fontsize=8)
    rc, ex = r["random_chains"], r["exploding"]
    layers = np.arange(1, len(rc["median_abs_grad"]) + 1)
    ax[1].plot(layers, rc["median_abs_grad"], "o-", label=f"w, b ~ N(0, 1): median over {rc['n']} "
                                                          "chains")
    ax[1].plot(layers, ex["grad"], "s-", label="all w = 100, every z = 0")
    ax[1].set(yscale="log", xlabel="layer j", ylabel="|∂C/∂b_j| (∂C/∂a_L = 1)", xticks=layers,
              title="the chain network's bias gradients")
    ax[1].legend(fontsize=8)
    for a in ax:
        a.grid(alpha=0.3, which="both")
    return save(fig, path)


def plot_all(json_path) -> list[Path]:
    """Every chapter-5 figure whose records are in ``json_path``; returns the PNG paths written."""
    records, out = load_records(json_path)
    written = []
    if any(k in records for k in ("5a", "5b", "5c", "5d")):
        written.append(accuracy(records, out / "ch5_accuracy.png"))
    for id_, fn, name in (("5e", speed_init, "speed_init"), ("5g", chain, "chain")):
        if id_ in records:
            written.append(fn(records, out / f"ch5_{name}.png"))
    if any(k.startswith("5f ") for k in records):
        written.append(speed_training(records, out / "ch5_speed_training.png"))
    if any(k.startswith("5h ") for k in records):
        written.append(beyond(records, out / "ch5_beyond.png"))
    return written


if __name__ == "__main__":
    for p in plot_all(sys.argv[1] if len(sys.argv) > 1 else "results/ch5.json"):
        print(f"wrote {p}")
