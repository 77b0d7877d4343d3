"""Chapter 1: network.py's sigmoid networks on MNIST, and the non-neural baselines.

    python -m experiments.ch1 [--quick] [--seeds N] [--out DIR] [--only 1a,B2] [--svm]
                              [--set FIELD=VALUE] [--checkpoint-dir DIR [--resume]] [--compile-cache
                              DIR]

Runs 1a–1e and baselines B1–B3 (docs/book.md) and writes DIR/ch1.json and DIR/ch1.md.
Networks: sigmoid everywhere, quadratic cost, W, b ~ N(0, 1), mini-batch 10, 30 epochs,
test-set accuracy after each epoch; the book reports the peak of the best of 3 runs.
B3 (the SVM) takes minutes on 50,000 images, so it runs only with ``--svm``.
"""

import dataclasses
import time

import numpy as np

from experiments import cli, command_line, common, interrupts, numpy_baselines, result_files
from experiments.run_config import RunConfig
from nnjax import data

NETWORK = dict(epochs=30, batch_size=10, init="large", cost="quadratic")

RUNS = [
    RunConfig("1a", (784, 30, 10), eta=3.0, book=95.42, note="book: peak of the best of its 3 "
                                                             "runs; epoch 0 ≈ 91.3%",
              **NETWORK),
    RunConfig("1b", (784, 100, 10), eta=3.0, book=96.59, note="peak; large run-to-run variation",
              **NETWORK),
    RunConfig("1c", (784, 100, 10), eta=0.001, note="learns very slowly: ≈11% → 21% over 30 epochs",
              **NETWORK),
    RunConfig("1d", (784, 30, 10), eta=100.0, note="stuck near 10%", **NETWORK),
    RunConfig("1e", (784, 10), eta=3.0, note="no hidden layer (exercise); not reported", **NETWORK),
]
# the --only names, in the order of the results table
IDS = [c.id for c in RUNS] + ["B1", "B2", "B3"]


def quick(cfg: RunConfig) -> RunConfig:
    """The smoke version: one epoch on the first 5,000 training images."""
    return dataclasses.replace(cfg, epochs=1, train_size=5000)


def network_record(cfg: RunConfig, mnist: data.MNIST, seeds, verbose: bool, **fit_options) -> dict:
    per_seed = common.run_seeds(cfg, mnist, seeds, verbose=verbose, **fit_options)
    first = [r["accuracy"][0] if r["accuracy"] else None for r in per_seed]
    return result_files.make_record(cfg, per_seed, metric="peak",
                                    first_epoch_mean=result_files.mean_of(first),
                              final_mean=result_files.mean_of([r["final"] for r in per_seed]))


def baseline_record(id_: str, book, note: str, correct: list[int], total: int, seeds, wall_s: float,
                    config: dict, dataset: str) -> dict:
    acc = [result_files.percent(c, total) for c in correct]
    return {
        "id": id_, "book": book, "note": note, "metric": "accuracy",
        **result_files.summary(acc), "seeds": list(seeds),
        "per_seed": [{"seed": s, "accuracy": a} for s, a in zip(seeds, acc)],
        "config": config, "wall_s": wall_s, "dataset": dataset, **result_files.environment(),
    }


def baselines(mnist: data.MNIST, seeds, *, svm: bool, svm_n: int | None,
              dataset: str = "mnist") -> list[dict]:
    """B1–B3 on ``mnist`` (the data set named ``dataset``)."""
    tr, te = mnist.training, mnist.test
    records = []
    start = time.perf_counter()
    guesses = [int(round(numpy_baselines.random_guess_accuracy(te.y,
                                                               np.random.default_rng(s)) * len(
                                                                   te.y)))
               for s in seeds]
    records.append(baseline_record("B1", None, "random guess ≈ 10%", guesses, len(te.y), seeds,
                                   time.perf_counter() - start, {"method": "uniform random digit"},
                                   dataset))
    start = time.perf_counter()
    dark = numpy_baselines.average_darkness(tr.x, tr.y, te.x, te.y)
    records.append(baseline_record("B2", 22.25, "nearest mean darkness per digit", [dark],
                                   len(te.y), [0], time.perf_counter() - start,
                                   {"method": "average darkness"}, dataset))
    if svm:
        start = time.perf_counter()
        correct = numpy_baselines.svm_baseline(tr.x, tr.y, te.x, te.y, n_train=svm_n)
        records.append(baseline_record("B3", 94.35, "SVC(rbf, C=1, gamma=1/784) on "
                                                    f"{svm_n or len(tr.y)} images",
                                       [correct], len(te.y), [0], time.perf_counter() - start,
                                       {"method": "sklearn SVC", "C": 1.0, "gamma": 1 / 784,
                                        "n_train": svm_n}, dataset))
    return records


def main(argv=None) -> list[dict]:
    p = command_line.add_run_options(command_line.base_parser(__doc__.splitlines()[0], IDS))
    p.add_argument("--svm", action="store_true", help="also run B3, the scikit-learn SVM (minutes "
                                                      "on 50k)")
    p.add_argument("--svm-n", type=int, default=None, help="train the SVM on the first N images "
                                                           "only")
    args = command_line.parse_args(p, argv)
    ids = command_line.parse_only(args.only, IDS)
    configs = command_line.prepare(p, args, [c for c in RUNS if c.id in ids], quick)
    mnist = data.load(args.dataset, args.data_dir)
    seeds = list(range(1 if args.quick else args.seeds))
    with interrupts.saving_on_interrupt(args, "ch1", IDS) as records:
        for c in configs:
            records.append(network_record(c, mnist, seeds, not args.quiet,
                                          **command_line.fit_options(args)))
        if ids & {"B1", "B2", "B3"}:
            svm = "B3" in ids and (args.svm or args.only is not None)
            svm_n = args.svm_n or (1000 if args.quick else None)
            records += [r for r in baselines(mnist, seeds, svm=svm, svm_n=svm_n,
                                             dataset=args.dataset) if r["id"] in ids]
    if args.merge:
        records = result_files.merge_saved(args.out, "ch1", records, IDS)
    result_files.report_saved(args.out, "ch1", records)
    return records


if __name__ == "__main__":
    cli.run(main)
