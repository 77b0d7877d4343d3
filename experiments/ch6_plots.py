"""Chapter 6's figures, drawn from saved results (never retrains).

    python -m experiments.ch6_plots [--out DIR] [--data-dir DIR]

Reads DIR/ch6.json (and DIR/ch6_<id>_filters.npz) written by `experiments.ch6` and saves
next to them:
- ch6_errors.png: the misclassified test digits of the best network (the ensemble when
  there is one), each with its true and predicted label, as the book shows its
  ensemble's 33 errors, and the book's count for that row beside ours;
- ch6_filters_<id>.png: the learned 5×5 filters of both conv layers of that row's best run
  (an ensemble's first member);
- ch6_curves.png: validation and test accuracy per epoch of each row's best run, the
  rows on the expanded training set in a panel of their own;
- ch6_expansion.png: training images with their four one-pixel shifts (the book's
  expanded data) and the optional rotations and elastic distortions of `nnjax.expand`.
"""

import argparse
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments.plotting import load_records, plt, save
from nnjax import data, expand

METRIC = "test_at_best_validation"


def best_run(record: dict) -> dict:
    """The per-seed entry a record's "best" comes from."""
    return max(record["per_seed"], key=lambda r: r[METRIC])


def plot_errors(record: dict, test_images: np.ndarray, path: Path, cols: int = 11,
                most: int = 110) -> Path:
    """A grid of the misclassified test images of ``record``'s best run (the first ``most``), "true
    → predicted", titled with the book's error count for the row when it reports one."""
    all_errors = best_run(record)["errors"]
    errors = all_errors[:most]
    rows = max(1, math.ceil(len(errors) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.05 + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (index, label, predicted) in zip(axes.flat, errors):
        ax.imshow(test_images[index].reshape(28, 28), cmap="Greys", vmin=0, vmax=1)
        ax.set_title(f"{label} → {predicted}", fontsize=8)
    fig.suptitle(errors_title(record, len(errors), len(test_images)), fontsize=9)
    return save(fig, path)


def errors_title(record: dict, shown: int, test_size: int) -> str:
    """The error grid's title: how many of the best run's errors it shows, its test accuracy, and
    the book's error count and accuracy for the row (the book's 6l: 33 errors, 99.67%)."""
    run = best_run(record)
    total = len(run["errors"])
    count = f"the {shown}" if shown == total else f"{shown} of the {total}"
    book = record.get("book")
    versus = ("" if book is None else
              f"; the book: {round((100 - book) / 100 * test_size)} errors, {book:.2f}%")
    return (f"{record['id']}: {count} misclassified test digits (true → predicted), "
            f"test {run[METRIC]:.2f}%{versus}")


def _tiles(kernels: np.ndarray, per_row: int, ax, title: str) -> None:
    """Draw kernels (n, k, k) as one mosaic, ``per_row`` a row, each tile scaled to its own range
    (dark = large)."""
    n, k = kernels.shape[0], kernels.shape[1]
    rows = math.ceil(n / per_row)
    mosaic = np.full((rows * (k + 1) - 1, per_row * (k + 1) - 1), np.nan)
    for i, kern in enumerate(kernels):
        r, c = divmod(i, per_row)
        lo, hi = kern.min(), kern.max()
        mosaic[r * (k + 1):r * (k + 1) + k, c * (k + 1):c * (k + 1) + k] = (kern - lo) / (hi - lo
                                                                                          + 1e-12)
    ax.imshow(mosaic, cmap="Greys", interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def plot_filters(filters: list[np.ndarray], net_id: str, path: Path) -> Path:
    """Each conv layer's k×k filters: one column per feature map, one row per input channel."""
    ratios = [w.shape[2] / w.shape[3] for w in filters]  # mosaic height / width
    fig, axes = plt.subplots(len(filters), 1, figsize=(12, 1.0 + 12 * sum(ratios)), squeeze=False,
                             gridspec_kw={"height_ratios": ratios})
    for layer, (w, ax) in enumerate(zip(filters, axes[:, 0]), start=1):
        k, _, c, f = w.shape
        kernels = np.transpose(w, (2, 3, 0, 1)).reshape(c * f, k, k)
        _tiles(kernels, f, ax, f"{net_id} conv layer {layer}: {f} feature maps (columns) × "
                               f"{c} input channel{'s' * (c > 1)} (rows), {k}×{k}")
    return save(fig, path)


def filters_name(record: dict) -> str:
    """Whose filters a row's figure shows: its best run's, or an ensemble's first member's."""
    if record["config"]["members"] == 1:
        return record["id"]
    return f"{record['id']} (first member, seed {best_run(record)['seeds'][0]})"


def plot_curves(records: list[dict], path: Path) -> Path:
    """Validation (dashed) and test (solid) accuracy per epoch of each row's best run: one panel
    for the rows trained on the training set as given (6a–6f) and one, on its own scale, for
    those trained on the expanded set (6g–6k), whose curves lie within a point of each other."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        # a separately trained ensemble: its members have their own rows
        if "test_accuracy" in best_run(r)["history"]:
            expand_ = r["config"].get("expand", "none")
            groups.setdefault("training set as given" if expand_ == "none"
                              else f"expanded training set ({expand_})", []).append(r)
    limits = {"training set as given": (96.5, 99.5)}
    fig, axes = plt.subplots(1, max(len(groups), 1), figsize=(6.5 * max(len(groups), 1), 5),
                             squeeze=False)
    for ax, (title, rows) in zip(axes[0], groups.items()):
        for r in rows:
            hist = best_run(r)["history"]
            line, = ax.plot(hist["test_accuracy"], label=f"{r['id']} test")
            ax.plot(hist["validation_accuracy"], "--", color=line.get_color(), alpha=0.6)
        ax.set_ylim(*limits.get(title, (98.5, 99.8)))
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, ncol=2)
    for ax in axes[0]:
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    fig.suptitle("chapter 6: test (solid) and validation (dashed) accuracy per epoch, best run of "
                 "each row")
    return save(fig, path)


def plot_expansion(images: np.ndarray, path: Path) -> Path:
    """Each image, its shifts down, up, right, left, two ±10° rotations and an elastic
    distortion."""
    x = jnp.asarray(images).reshape(-1, 28, 28)
    shifted, _ = expand.shifts(x, jnp.zeros(len(x), jnp.int32))
    columns = [shifted.reshape(len(x), 5, 28, 28)[:, i] for i in range(5)]
    columns += [expand.rotate(x, jnp.full(len(x), d)) for d in (-10.0, 10.0)]
    columns.append(expand.elastic(x, jax.random.key(0)))
    titles = ["original", "down", "up", "right", "left", "rotated −10°", "rotated +10°", "elastic"]
    fig, axes = plt.subplots(len(x), len(columns), figsize=(len(columns) * 1.1, len(x) * 1.2),
                             squeeze=False)
    for j, (col, title) in enumerate(zip(columns, titles)):
        axes[0, j].set_title(title, fontsize=8)
        for i in range(len(x)):
            axes[i, j].imshow(np.asarray(col[i]), cmap="Greys", vmin=0, vmax=1)
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
    return save(fig, path)


def plot_all(json_path, data_dir=None) -> list[Path]:
    """Every chapter-6 figure from a saved ch6.json (MNIST's test images for the error grid)."""
    records, out = load_records(json_path)
    records = list(records.values())
    ensembles = [r for r in records if r["config"]["members"] > 1]
    shown = max(ensembles or records, key=lambda r: r["best"])
    mnist = data.load_mnist(data_dir)
    paths = [plot_errors(shown, mnist.test.x, out / "ch6_errors.png"),
             plot_curves(records, out / "ch6_curves.png"),
             plot_expansion(mnist.training.x[:4], out / "ch6_expansion.png")]
    for r in records:
        npz = out / f"ch6_{r['id']}_filters.npz"
        if npz.exists():
            with np.load(npz, allow_pickle=False) as f:
                paths.append(plot_filters([f[k] for k in sorted(f.files,
                                                                key=lambda s: int(s.split("_")[
                                                                    1]))],
                                          filters_name(r), out / f"ch6_filters_{r['id']}.png"))
    return paths


def main(argv=None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results", help="directory holding ch6.json (default: results)")
    p.add_argument("--data-dir", default=None, help="MNIST directory, for the test images")
    args = p.parse_args(argv)
    paths = plot_all(Path(args.out) / "ch6.json", args.data_dir)
    for path in paths:
        print(f"wrote {path}")
    return paths


if __name__ == "__main__":
    main()
