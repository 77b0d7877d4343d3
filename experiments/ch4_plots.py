"""Chapter 4's figures, drawn from a saved ch4.json (never rebuilds or retrains).

    python -m experiments.ch4_plots [results/ch4.json]

Writes PNGs next to the JSON: ch4_steps_bumps.png (steps, bumps from four activations),
ch4_approximations.png (the book's five bumps, g at several N), ch4_errors.png (max
|g − f| against hidden neurons, trained networks as points) and ch4_towers.png (a
tower, the grid of towers, the overlap repair). A figure whose records are missing is
skipped.
"""

import sys
from pathlib import Path

import matplotlib.ticker
import numpy as np

from experiments.plotting import load_records, plt, save


def steps_bumps(records: dict, path: Path) -> Path:
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    if "4b" in records:
        steps = records["4b"]["steps"]
        x = records["4b"]["curves"]["x"]
        for w, y in steps.items():
            ax[0].plot(x, y, label=f"w = {float(w):g}")
        ax[0].axvline(0.4, color="grey", lw=0.5, ls=":")
        ax[0].set(title="σ(w x + b) with s = −b/w = 0.4", xlabel="x")
    bumps = next((records[k]["bumps"] for k in ("4c", "4d") if k in records), None)
    if bumps is not None:
        for name in ("sigmoid", "tanh", "wiggly", "relu"):
            ax[1].plot(bumps["x"], bumps[name], label=name)
        ax[1].set(title="a bump of height 0.8 on [0.3, 0.7] (w = 30), weighted output", xlabel="x")
    for a in ax:
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    return save(fig, path)


def approximations(records: dict, path: Path) -> Path:
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.3))
    if "4a" in records:
        c = records["4a"]["curves"]
        ax[0].plot(c["x"], c["phi"], color="k", lw=1, label="σ⁻¹∘f")
        for rule in ("median", "midpoint"):
            ax[0].plot(c["x"], c[rule]["weighted_output"], label=f"5 bumps, {rule} heights "
                       f"(score {c[rule]['score']:.3f})")
        ax[0].set(title="the book's five bumps: weighted output vs σ⁻¹∘f (goal ≤ 0.40)", xlabel="x")
    if "4b" in records:
        c = records["4b"]["curves"]
        ax[1].plot(c["x"], c["f"], color="k", lw=2, label="f")
        for n in (k for k in c if k not in ("x", "f")):
            ax[1].plot(c["x"], c[n], lw=1, label=f"{n} bumps ({2 * int(n)} neurons)")
        ax[1].set(title="g = σ(Σ bumps) with heights σ⁻¹∘f at bin midpoints, w = 1000", xlabel="x")
    for a in ax:
        a.legend(fontsize=8)
        a.grid(alpha=0.3)
    return save(fig, path)


def errors(records: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 5.5))
    goal = None
    for id_ in ("4b", "4c", "4d"):
        if id_ not in records:
            continue
        goal = records[id_]["config"]["goal"]
        for name, s in records[id_]["series"].items():
            label = name + (f" ({s['fewest_neurons']} neurons)" if s["fewest_neurons"] else "")
            ax.plot(s["neurons"], s["max"], marker=".", ms=3, lw=1, label=label)
    if "4g" in records:
        runs = records["4g"]["per_seed"]
        hidden = sorted({r["hidden"] for r in runs})
        ax.errorbar(hidden, [np.mean([r["max"] for r in runs if r["hidden"] == h]) for h in hidden],
                    yerr=[np.std([r["max"] for r in runs if r["hidden"] == h]) for h in hidden],
                    fmt="ks", label=f"trained by SGD ({records['4g']['config']['sgd_epochs']} "
                                    "epochs)")
    if goal is not None:
        ax.axhline(goal, color="grey", ls="--", lw=1)
    ax.set(xscale="log", yscale="log", xlabel="hidden neurons", ylabel="max |g − f| on [0, 1]",
           title="error against hidden neurons (legend: fewest neurons for max ≤ 0.01)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return save(fig, path)


def towers(records: dict, path: Path) -> Path:
    fig, ax = plt.subplots(2, 3, figsize=(15, 8.5))
    if "4f" in records:
        s = records["4f"]["surfaces"]
        panels = [("tower", ax[0, 0], "one tower on [0.3, 0.6]×[0.4, 0.7]"), ("f2", ax[0, 1],
                                                                              "f2(x, y)"),
                  ("grid", ax[1, 0], f"g: {s['n']}×{s['n']} towers (gaps at the corners)"),
                  ("grid_copies", ax[1, 1], f"g: {s['copies']} shifted copies of f2/{s['copies']}")]
        for key, a, title in panels:
            im = a.imshow(np.asarray(s[key]).T, origin="lower", extent=(0, 1, 0, 1), cmap="viridis")
            a.set(title=title, xlabel="x", ylabel="y")
            fig.colorbar(im, ax=a, fraction=0.046)
        grids = records["4f"]["grids"]
        for stat, style in (("max", "o-"), ("mean", "s-")):
            ax[1, 2].plot([r["n"] for r in grids], [r[stat] for r in grids], style,
                          label=f"{stat} |g − f2|")
        ax[1, 2].set(xscale="log", yscale="log", xlabel="towers per axis", title="one grid of "
                                                                                 "towers")
        ax[1, 2].set_xticks([r["n"] for r in grids], [str(r["n"]) for r in grids])
    if "4e" in records:
        e = records["4e"]
        a = ax[0, 2]
        a.plot([r["copies"] for r in e["two_d"]], [r["max"] for r in e["two_d"]], "o-",
               label=f"2-D, {e['two_d'][0]['n']}×{e['two_d'][0]['n']} towers per copy")
        a.plot([r["copies"] for r in e["one_d"]], [r["max"] for r in e["one_d"]], "s-",
               label=f"1-D, {e['config']['overlap_bins']} bins per copy")
        a.plot([r["n"] // e["config"]["overlap_bins"] for r in e["one_d_finer"]],
               [r["max"] for r in e["one_d_finer"]], "^--", label="1-D, one grid of M× the bins")
        a.set(xscale="log", yscale="log", xlabel="copies M", ylabel="max |g − f|",
              title="overlap repair")
        a.set_xticks([r["copies"] for r in e["one_d"]], [str(r["copies"]) for r in e["one_d"]])
    for a in (ax[0, 2], ax[1, 2]):
        a.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())  # only the labelled sizes
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=8)
        a.grid(alpha=0.3, which="both")
    return save(fig, path)


def plot_all(json_path) -> list[Path]:
    """Every chapter-4 figure whose records are in ``json_path``; returns the PNG paths written."""
    records, out = load_records(json_path)
    written = []
    for needed, fn, name in ((("4b", "4c", "4d"), steps_bumps, "steps_bumps"),
                             (("4a", "4b"), approximations, "approximations"),
                             (("4b", "4c", "4d", "4g"), errors, "errors"), (("4e", "4f"), towers,
                                                                            "towers")):
        if any(k in records for k in needed):
            written.append(fn(records, out / f"ch4_{name}.png"))
    return written


if __name__ == "__main__":
    for p in plot_all(sys.argv[1] if len(sys.argv) > 1 else "results/ch4.json"):
        print(f"wrote {p}")
