"""Chapter 1's networks trained by the independent NumPy reference, to compare spreads.

    python -m experiments.ch1_reference [--only 1a,1b] [--seeds N] [--form matrix|example]
                                        [--out DIR] [--quick] [--quiet] [--data-dir DIR]

The book gives one number per network: 1a is the peak of the best of three runs, 1b the
peak of one run. At η = 3 from N(0, 1) weights the peak moves by tenths of a percent from
seed to seed, and [784, 100, 10] often stalls with an output neuron saturated, so a gap
between one of our runs and the book's number says little by itself. This script trains
the same networks with `experiments.numpy_baselines` instead of nnjax: network.py's
algorithm in NumPy, in float64 as the book's code computes, drawing its weights and
shuffles from NumPy's generator. If nnjax is right, the two sets of per-seed peaks are
draws from the same distribution.

``--form matrix`` (default) computes each mini-batch's gradient in one matrix pass, the
same update as network.py's per-example loop (``--form example``) up to the order of
summation, and several times faster. Writes DIR/ch1_reference.json (records shaped like
ch1.json, with ``implementation``) and DIR/ch1_reference.md, which sets each network's
spread beside nnjax's from DIR/ch1.json when that file has the network.
"""

import argparse
import json
import time
from math import comb
from pathlib import Path

import numpy as np

from experiments import ch1, command_line, common, progress, result_files
from experiments import numpy_baselines as nb
from nnjax import data

NETWORKS = ch1.RUNS  # 1a–1e: sigmoid, quadratic cost, N(0, 1) weights, as numpy_baselines trains
IDS = [c.id for c in NETWORKS]
FORMS = {"matrix": nb.sgd_epoch_matrix, "example": nb.sgd_epoch_per_example}


def float64_data(cfg, mnist: data.MNIST):
    """The config's (training, evaluation) pairs with the images in float64, as network.py
    computes."""
    return tuple((x.astype(np.float64), y) for x, y in common.select_data(mnist, cfg))


def train_seed(cfg, training, evaluation, seed: int, form: str, verbose: bool) -> dict:
    """One seed of a network on `float64_data`: weights and every epoch's shuffle from
    ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    ws, bs = nb.init_large(rng, cfg.sizes, np.float64)
    (x, y), (x_eval, y_eval) = training, evaluation
    show = progress.progress_printer(f"{cfg.id} NumPy seed {seed}", cfg.epochs,
                                     len(y_eval)) if verbose else None
    hist = {"epoch": [], "evaluation_accuracy": [], "seconds": []}
    start = time.perf_counter()
    for epoch in range(cfg.epochs):
        tick = time.perf_counter()
        ws, bs = FORMS[form](ws, bs, x, y, cfg.eta, cfg.batch_size, rng)
        entry = {"epoch": epoch, "evaluation_accuracy": nb.evaluate(ws, bs, x_eval, y_eval),
                 "seconds": time.perf_counter() - tick}
        for k, v in entry.items():
            hist[k].append(v)
        if show:
            show(entry)
    return common.seed_result(seed, hist, time.perf_counter() - start, n_train=len(y),
                              n_eval=len(y_eval))


def best_of_k(values, k: int, threshold: float | None = None) -> dict:
    """The best of ``k`` runs drawn without replacement from ``values``, over every such draw.

    With the values sorted, the i-th smallest (1-based) is the best of a k-subset in
    C(i−1, k−1) of the C(n, k) subsets. Returns the expected best, and with ``threshold``
    the share of subsets whose best reaches it (the chance that k fresh seeds, from this
    distribution, would).
    """
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= {n} (the number of values), got k={k}")
    weights = np.array([comb(i, k - 1) for i in range(n)], dtype=float) / comb(n, k)
    out = {"k": k, "expected_best": float(weights @ v)}
    if threshold is not None:
        out["threshold"] = threshold
        out["share_reaching"] = float(weights[v >= threshold].sum())
    return out


def spread(record: dict) -> dict:
    """A record's per-seed peaks summarised for comparison; from 3 seeds on, also `best_of_k` for k
    = 3 against the book's figure (when the record has one)."""
    peaks = [r["peak"] for r in record["per_seed"]]
    out = {"seeds": len(peaks), **result_files.summary(peaks), "median": float(np.median(peaks)),
           "min": float(min(peaks))}
    if len(peaks) >= 3:
        out["best_of_3"] = best_of_k(peaks, 3, record.get("book"))
    return out


def comparison(records: list[dict], nnjax_records: list[dict]) -> str:
    """Markdown: each network's per-seed peaks by nnjax and by the reference, side by side."""
    lines = ["| id | implementation | seeds | min | median | mean ± std | best | expected best of "
             "3 | triples reaching the book | book |", "|---|---|---|---|---|---|---|---|---|---|"]
    ours = {r["id"]: r for r in nnjax_records}
    for ref in records:
        for name, r in (("nnjax (float32)", ours.get(ref["id"])), ("NumPy reference (float64)",
                                                                   ref)):
            if r is None or not r.get("per_seed"):
                continue
            s = spread(r)
            b3 = s.get("best_of_3", {})
            reach = f"{b3['share_reaching']:.0%}" if "share_reaching" in b3 else "–"
            best3 = f"{b3['expected_best']:.2f}%" if b3 else "–"
            book = "–" if r.get("book") is None else f"{r['book']:.2f}%"
            lines.append(f"| {r['id']} | {name} | {s['seeds']} | {s['min']:.2f}% | "
                         f"{s['median']:.2f}% | {s['mean']:.2f} ± {s['std']:.2f} | "
                         f"{s['best']:.2f}% | {best3} | {reach} | {book} |")
    return ("Per-seed peak test accuracy. \"Expected best of 3\" averages the best peak over every "
            "choice of 3 of the seeds; \"triples reaching the book\" is the share of those choices "
            "whose best is at least the book's figure.\n\n" + "\n".join(lines) + "\n")


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="1a,1b", help=f"comma-separated ids of {IDS} (default: 1a,1b)")
    p.add_argument("--seeds", type=command_line.positive_int, default=3, help="seeds per network: "
                                                                              "0..N-1 (default 3)")
    p.add_argument("--form", choices=list(FORMS), default="matrix",
                   help="matrix: one pass per mini-batch (default); example: network.py's "
                        "per-example loop")
    p.add_argument("--out", default="results", help="directory for the results files (default: "
                                                    "results)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (one epoch on "
                                                        "5,000 images)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, "
                                                    "else the cache)")
    args = p.parse_args(argv)
    ids = command_line.parse_only(args.only, IDS)
    configs = [ch1.quick(c) if args.quick else c for c in NETWORKS if c.id in ids]
    mnist = data.load_mnist(args.data_dir)
    seeds = list(range(1 if args.quick else args.seeds))
    implementation = f"experiments.numpy_baselines, float64, {args.form} form"
    records = []
    for cfg in configs:
        training, evaluation = float64_data(cfg, mnist)
        per_seed = [train_seed(cfg, training, evaluation, s, args.form, not args.quiet)
                    for s in seeds]
        records.append(result_files.make_record(cfg, per_seed, metric="peak",
                                                implementation=implementation,
                                          numpy_version=np.__version__))
    saved = Path(args.out) / "ch1.json"
    nnjax_records = json.loads(saved.read_text()) if saved.exists() and not args.quick else []
    result_files.report_saved(args.out, "ch1_reference", records,
                              comparison(records, nnjax_records))
    return records


if __name__ == "__main__":
    main()
