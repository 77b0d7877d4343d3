"""Chapter 1's figure, drawn from a saved ch1.json (never retrains).

    python -m experiments.ch1_plots [results/ch1.json]

Writes ch1_training.png next to the JSON: test accuracy after each epoch for every
network run (1a–1e), one thin line per seed and the mean over seeds in bold, with the
book's reported figure as a dashed line where it gives one; a last panel sets the best
of every run and of the baselines B1–B3 (which have no epochs) beside the book's.
"""

import sys
from pathlib import Path

import numpy as np

from experiments.plotting import load_records, plt, save

NETWORKS = ("1a", "1b", "1c", "1d", "1e")
BASELINES = ("B1", "B2", "B3")


def training_panel(a, record: dict) -> None:
    """Per-seed and mean test accuracy per epoch of one run, against the book's number."""
    curves = [np.asarray(r["accuracy"], float) for r in record["per_seed"]]
    for c in curves:
        a.plot(np.arange(len(c)), c, lw=0.6, alpha=0.45, color="tab:blue")
    length = min(len(c) for c in curves)
    a.plot(np.arange(length), np.mean([c[:length] for c in curves], axis=0), lw=2, color="tab:blue",
           label=f"mean of {len(curves)} seeds")
    if record.get("book") is not None:
        a.axhline(record["book"], ls="--", color="k", lw=1, label=f"book {record['book']:.2f}%")
    sizes = record["config"]["sizes"]
    a.set(title=f"{record['id']}: {list(sizes)}, η = {record['config']['eta']:g}  (best "
                f"{record['best']:.2f}%)",
          xlabel="epoch", ylabel="test accuracy (%)")
    a.grid(alpha=0.3)


def best_panel(a, records: dict) -> None:
    """Our best of every run and baseline as bars, the book's figure as a black tick."""
    ids = [i for i in NETWORKS + BASELINES if i in records]
    x = np.arange(len(ids))
    a.bar(x, [records[i]["best"] for i in ids], color="tab:blue", alpha=0.7)
    book = [(j, records[i]["book"]) for j, i in enumerate(ids)
            if records[i].get("book") is not None]
    a.plot([j for j, _ in book], [b for _, b in book], "k_", ms=18, mew=2)
    a.set(xticks=x, xticklabels=ids, ylabel="test accuracy (%)", title="best of each run (bars) "
                                                                       "and the book's (ticks)")
    a.grid(alpha=0.3, axis="y")


def training(records: dict, path: Path) -> Path:
    """One panel per network run, then the bests beside the baselines."""
    shown = [i for i in NETWORKS if i in records]
    cols = 3
    rows = -(-(len(shown) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
    for a, id_ in zip(axes.flat, shown):
        training_panel(a, records[id_])
        a.legend(fontsize=7, loc="lower right")
    best_panel(axes.flat[len(shown)], records)
    for a in axes.flat[len(shown) + 1:]:
        a.axis("off")
    return save(fig, path)


def plot_all(json_path) -> list[Path]:
    """The chapter-1 figure if ch1.json holds any network run; returns the PNG paths written."""
    records, out = load_records(json_path)
    if not any(i in records for i in NETWORKS):
        return []
    return [training(records, out / "ch1_training.png")]


if __name__ == "__main__":
    for p in plot_all(sys.argv[1] if len(sys.argv) > 1 else "results/ch1.json"):
        print(f"wrote {p}")
