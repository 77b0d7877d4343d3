"""An η × λ grid for 3b's network (or 6f's conv net) as one vmapped program, drawn as a heat
map of validation accuracy.

    python -m experiments.sweep_grid [--net 3b|6f] [--dataset fashion-mnist] [--etas 0.1,0.5,2.5]
                                     [--lmbdas 0,1,5] [--epochs N] [--train-size N] [--no-compare]
                                     [--quick] [--out DIR]

Chapter 3 chooses η and λ by training the same network again and again. Here every
(η, λ) pair of the grid is a member of one compiled program (`nnjax.sweep`), every member
from the same seed-0 weights and shuffles, trained on the first 50,000 training images and
scored on the 10,000 validation images (and the test images) after each epoch:

- ``--net 3b`` (default): 3b's [784, 100, 10] sigmoid network with cross-entropy, the large
  initialisation, mini-batch 10 and network2's L2 scaling, 30 epochs;
- ``--net 6f``: 6f's conv net (conv20 → conv40 → FC100, ReLU, softmax) with network3's L2
  scaling, 15 epochs unless ``--epochs``.

The heat map shows each member's best validation accuracy over the epochs; the JSON also
holds each member's test accuracy at that epoch and every member's validation and test
accuracy after every epoch (``history_percent``, epoch-major). Unless ``--no-compare``, the
same grid is then trained one configuration at a time (`nnjax.train.fit`), and both wall
times are written beside the map.

Writes DIR/sweep_<data set>.json (grid, accuracies, times) and DIR/sweep_<data set>.png, or
sweep_6f_<data set>.* for the conv net.
"""

import argparse
import dataclasses
import json
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import ch3, ch6, command_line, common, progress, result_files
from experiments.plotting import plt
from nnjax import convnet, data, guard, init, network, optim, sweep, train

BASE = dataclasses.replace(next(c for c in ch3.RUNS if c.id == "3b"), id="grid",
                           evaluate_on="validation", book=None)
CONV_BASE = dataclasses.replace(next(c for c in ch6.RUNS if c.id == "6f"), id="grid-6f",
                                epochs=15, book=None)
ETAS = (0.1, 0.25, 0.5, 1.0, 2.5)  # the default grid's learning rates η (3b)
LMBDAS = (0.0, 1.0, 2.5, 5.0, 10.0)  # the default grid's regularisation parameters λ (3b)
CONV_ETAS = (0.03, 0.1)  # 6f's defaults: the book's η and λ and larger ones
CONV_LMBDAS = (0.1, 1.0, 5.0)


@dataclasses.dataclass(frozen=True)
class Problem:
    """What a grid trains: the network's first weights and key, its gradient, the optimiser of
    one (η, λ) member, how it scores a labelled set, and the data."""

    label: str
    cfg: Any  # the base config, recorded with the results
    start: tuple  # (params, training key), as the seed's own run would start
    grad_fn: Callable
    optimiser: Callable  # (η, λ) -> optax.GradientTransformation
    evaluate: Callable  # (params, x, y) -> (correct, mean cost)
    epoch_options: dict  # make_epoch's shuffle and stochastic
    training: tuple
    validation: tuple
    test: tuple


def fc_problem(cfg, source: data.MNIST) -> Problem:
    """3b's fully connected network on ``source`` (first N images when the config says so)."""
    training, validation = common.select_data(source, cfg)
    test = (source.test.x[:cfg.eval_size], source.test.y[:cfg.eval_size])
    net, n = cfg.network(), len(training[1])
    k_init, k_train = jax.random.split(jax.random.key(0))  # as `common.run_seeds` splits seed 0
    return Problem("FC " + ",".join(map(str, cfg.sizes)), cfg,
                   (init.init_params(k_init, net.sizes, cfg.init), k_train),
                   common.gradient_fn(net, cfg.gradient),
                   lambda eta, lmbda: optim.sgd(eta, lmbda=lmbda, n=n),
                   partial(network.evaluate, net=net), {}, training, validation, test)


def conv_problem(cfg: ch6.ConvConfig, source: data.MNIST) -> Problem:
    """6f's conv net, trained as `experiments.ch6` trains it (network3's L2, no shuffling)."""
    training, validation, test = ch6.prepare_data(cfg, source)
    net, n = convnet.build(cfg.arch(), init=cfg.init, dropout_mode=cfg.dropout_mode,
                           conv_impl=cfg.conv_impl), len(training[1])
    k_init, k_train = jax.random.split(jax.random.key(0))  # as `ch6.train_members` splits seed 0
    return Problem("conv " + ",".join(map(str, cfg.convs)) + " → FC " + ",".join(map(str, cfg.fc)),
                   cfg, (net.init(k_init, training[0].shape[1:])[1], k_train),
                   ch6.gradient(cfg, net, n),
                   lambda eta, lmbda: ch6.optimiser(dataclasses.replace(cfg, eta=eta,
                                                                        lmbda=lmbda), n),
                   partial(convnet.evaluate, apply=net.apply),
                   {"shuffle": cfg.shuffle, "stochastic": cfg.dropout > 0},
                   training, validation, test)


class Scores(train.Piece):
    """Each member's correct count on the validation and the test images after every epoch."""

    def __init__(self, evaluate: Callable, validation, test, members: bool):
        self.sets = {"validation": validation, "test": test}
        self.score = jax.jit(jax.vmap(evaluate, (0, None, None)) if members else evaluate)

    def measure(self, run: train.Run) -> None:
        for name, (x, y) in self.sets.items():
            correct = self.score(run.state.params, x, y)[0]
            run.record[f"{name}_accuracy"] = np.atleast_1d(jax.device_get(correct)).tolist()
        run.record["evaluation_accuracy"] = run.record["validation_accuracy"]  # for the progress


def members(etas, lmbdas) -> list[tuple[float, float]]:
    """The grid's (η, λ) pairs, η-major: member i is (etas[i // len(lmbdas)], lmbdas[i %
    len(lmbdas)])."""
    return [(e, l) for e in etas for l in lmbdas]


def best_epochs(hist: dict, k: int) -> list[dict]:
    """Each member's best validation count, its (first) epoch and the test count there."""
    out = []
    for i in range(k):
        val = [epoch[i] for epoch in hist["validation_accuracy"]]
        e = int(np.argmax(val))
        out.append({"validation": val[e], "epoch": e, "test": hist["test_accuracy"][e][i]})
    return out


def vmapped(problem: Problem, grid, epochs: int,
            verbose: bool) -> tuple[list[dict], dict, float]:
    """Train every grid member in one vmapped program; each member's `best_epochs`, the history
    (correct counts per epoch, one per member) and the wall time."""
    params, key = problem.start
    k = len(grid)
    start = time.perf_counter()
    opt = problem.optimiser(*grid[0])
    state = sweep.init(sweep.stack([params] * k), opt,
                       {"learning_rate": jnp.array([e for e, _ in grid]),
                        "lmbda": jnp.array([l for _, l in grid])},
                       jnp.stack([key] * k))
    program = train.make_epoch(problem.grad_fn, opt, problem.cfg.batch_size,
                               **problem.epoch_options, members=True)
    _, hist = train.fit(program, state, problem.training, epochs=epochs,
                        pieces=[Scores(problem.evaluate, problem.validation, problem.test, True)],
                        on_epoch=progress.progress_printer(f"{k} members", epochs,
                                                           len(problem.validation[1]))
                        if verbose else None)
    history = {name: hist[f"{name}_accuracy"] for name in ("validation", "test")}
    return best_epochs(hist, k), history, time.perf_counter() - start


def one_at_a_time(problem: Problem, grid, epochs: int, verbose: bool) -> tuple[list[dict], float]:
    """The same grid as separate `train.fit` runs, one after another; `best_epochs` and wall
    time."""
    params, key = problem.start
    best, start = [], time.perf_counter()
    for eta, lmbda in grid:
        opt = problem.optimiser(eta, lmbda)
        _, hist = train.fit(train.make_epoch(problem.grad_fn, opt, problem.cfg.batch_size,
                                             **problem.epoch_options),
                            train.State(params, opt.init(params), key), problem.training,
                            epochs=epochs, pieces=[Scores(problem.evaluate, problem.validation,
                                                          problem.test, False), guard.Guard()])
        best += best_epochs(hist, 1)
        if verbose:
            print(f"[one at a time] η={eta:g} λ={lmbda:g}: best {best[-1]['validation']} / "
                  f"{len(problem.validation[1])} (elapsed {time.perf_counter() - start:.1f} s)",
                  flush=True)
    return best, time.perf_counter() - start


def heat_map(result: dict, path: Path) -> Path:
    """The grid's best validation accuracy (%) as an η × λ heat map with each cell's value, and the
    timings."""
    acc = np.array(result["best_validation_percent"]).reshape(len(result["etas"]),
                                                              len(result["lmbdas"]))
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    image = ax.imshow(acc, cmap="viridis", origin="lower", aspect="auto")
    ax.set_xticks(range(len(result["lmbdas"])), [f"{v:g}" for v in result["lmbdas"]])
    ax.set_yticks(range(len(result["etas"])), [f"{v:g}" for v in result["etas"]])
    ax.set_xlabel(f"λ (L2, {'network3' if result.get('net') == '6f' else 'network2'} scaling)")
    ax.set_ylabel("η")
    for (i, j), v in np.ndenumerate(acc):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", color="white" if v < acc.mean()
                else "black", fontsize=8)
    fig.colorbar(image, ax=ax, label="best validation accuracy (%)")
    times = f"one vmapped program {result['sweep_s']:.0f} s"
    if result.get("one_at_a_time_s") is not None:
        times += f"; one at a time {result['one_at_a_time_s']:.0f} s"
    ax.set_title(f"{result['network']} on {result['dataset']}, {result['epochs']} epochs, "
                 f"{result['train_size']} images\n{times}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def floats(text: str) -> tuple[float, ...]:
    """A comma-separated list of numbers from the command line."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        msg = f"expected comma-separated numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def problem_for(net: str, dataset: str, *, epochs: int | None, train_size: int | None,
                quick: bool, lmbda: float, data_dir=None) -> Problem:
    """The ``net`` ("3b" or "6f") problem on ``dataset``, quick-sized with ``quick``."""
    base = BASE if net == "3b" else CONV_BASE
    cfg = dataclasses.replace(base, dataset=dataset, epochs=1 if quick else epochs or base.epochs,
                              train_size=1000 if quick else train_size,
                              eval_size=500 if quick else None, lmbda=lmbda)
    source = data.load(dataset, data_dir)
    return fc_problem(cfg, source) if net == "3b" else conv_problem(cfg, source)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", choices=("3b", "6f"), default="3b",
                   help="3b's FC network (default) or 6f's conv net")
    p.add_argument("--dataset", choices=data.DATASETS, default="fashion-mnist",
                   help="the data (default fashion-mnist)")
    p.add_argument("--etas", type=floats, default=None,
                   help=f"the grid's η values (default {','.join(map(str, ETAS))}; 6f: "
                        f"{','.join(map(str, CONV_ETAS))})")
    p.add_argument("--lmbdas", type=floats, default=None,
                   help=f"the grid's λ values (default {','.join(map(str, LMBDAS))}; 6f: "
                        f"{','.join(map(str, CONV_LMBDAS))})")
    p.add_argument("--epochs", type=command_line.positive_int, default=None,
                   help=f"default {BASE.epochs} as 3b; 6f: {CONV_BASE.epochs} (the CPU cap of "
                        "experiments.ladder)")
    p.add_argument("--train-size", type=command_line.positive_int, default=None,
                   help="train on the first N training images (default all 50,000)")
    p.add_argument("--no-compare", action="store_true", help="skip training the grid one "
                                                             "configuration at a time")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run: 2 × 2 grid, 1 "
                                                        "epoch, 1,000 images")
    p.add_argument("--out", default="results", help="directory for sweep_<data set>.json and .png "
                                                    "(default results)")
    p.add_argument("--data-dir", default=None, help="the data set's folder (default: as "
                                                    "nnjax.data.load finds it)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--compile-cache", metavar="DIR",
                   default=os.environ.get(command_line.COMPILE_CACHE_ENV) or None,
                   help="keep compiled programs in DIR (default: "
                        f"${command_line.COMPILE_CACHE_ENV}, else none)")
    args = command_line.parse_args(p, argv)
    conv = args.net == "6f"
    etas = args.etas or (CONV_ETAS if conv else ETAS)
    lmbdas = args.lmbdas or (CONV_LMBDAS if conv else LMBDAS)
    etas, lmbdas = (etas[:2], lmbdas[:2]) if args.quick else (etas, lmbdas)
    problem = problem_for(args.net, args.dataset, epochs=args.epochs, train_size=args.train_size,
                          quick=args.quick, lmbda=lmbdas[0], data_dir=args.data_dir)
    cfg, grid, n_eval = problem.cfg, members(etas, lmbdas), len(problem.validation[1])
    best, history, sweep_s = vmapped(problem, grid, cfg.epochs, not args.quiet)
    result = {"dataset": args.dataset, "network": problem.label, "net": args.net,
              "etas": list(etas), "lmbdas": list(lmbdas), "epochs": cfg.epochs,
              "train_size": len(problem.training[1]), "n_eval": n_eval, **percents(best, n_eval),
              "history_percent": {name: [[result_files.percent(c, n_eval) for c in epoch]
                                         for epoch in counts] for name, counts in history.items()},
              "sweep_s": sweep_s, "one_at_a_time_s": None, "config": dataclasses.asdict(cfg),
              **result_files.environment()}
    if not args.no_compare:
        single, result["one_at_a_time_s"] = one_at_a_time(problem, grid, cfg.epochs,
                                                          not args.quiet)
        result["one_at_a_time_percent"] = percents(single, n_eval)["best_validation_percent"]
        # equal up to float rounding, which vmap may reorder
        result["one_at_a_time_matches"] = single == best
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"sweep_{'6f_' * conv}{args.dataset}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    png = heat_map(result, out / f"{stem}.png")
    i = int(np.argmax(result["best_validation_percent"]))
    test = result["test_at_best_validation_percent"][i]
    print(f"best: η={grid[i][0]:g} λ={grid[i][1]:g}, {result['best_validation_percent'][i]:.2f}% "
          f"validation (epoch {best[i]['epoch']}), {test:.2f}% test there; {len(grid)} "
          f"configurations as one program {sweep_s:.1f} s"
          + (f", one at a time {result['one_at_a_time_s']:.1f} s"
             if result["one_at_a_time_s"] is not None else ""))
    print(f"wrote {png}")
    return result


def percents(best: list[dict], n_eval: int) -> dict:
    """`best_epochs` as the results file's lists: validation and test accuracy (%), and epochs."""
    return {"best_validation_percent": [result_files.percent(b["validation"], n_eval)
                                        for b in best],
            "best_validation_epoch": [b["epoch"] for b in best],
            "test_at_best_validation_percent": [result_files.percent(b["test"], n_eval)
                                                for b in best]}


if __name__ == "__main__":
    main()
