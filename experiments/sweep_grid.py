"""An η × λ grid for 3b's network as one vmapped program, drawn as a heat map of validation
accuracy.

    python -m experiments.sweep_grid [--dataset fashion-mnist] [--etas 0.1,0.5,2.5] [--lmbdas 0,1,5]
                                     [--epochs N] [--train-size N] [--no-compare] [--quick] [--out
                                     DIR]

Chapter 3 chooses η and λ by training the same network again and again. Here every
(η, λ) pair of the grid is a member of one compiled program (`nnjax.sweep`): 3b's
[784, 100, 10] sigmoid network with cross-entropy, the large initialisation and
mini-batch 10, every member from the same seed-0 weights and shuffles, trained on the
first 50,000 training images and scored on the 10,000 validation images after each epoch.
The heat map shows each member's best validation accuracy over the epochs. Unless
``--no-compare``, the same grid is then trained one configuration at a time
(`nnjax.train.fit`), and both wall times are written beside the map.

Writes DIR/sweep_<data set>.json (grid, accuracies, times) and DIR/sweep_<data set>.png.
"""

import argparse
import dataclasses
import json
import os
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import ch3, command_line, common, progress, result_files
from experiments.plotting import plt
from nnjax import data, guard, init, monitor, network, optim, sweep, train

BASE = dataclasses.replace(next(c for c in ch3.RUNS if c.id == "3b"), id="grid",
                           evaluate_on="validation", book=None)
ETAS = (0.1, 0.25, 0.5, 1.0, 2.5)  # the default grid's learning rates η
LMBDAS = (0.0, 1.0, 2.5, 5.0, 10.0)  # the default grid's regularisation parameters λ


def members(etas, lmbdas) -> list[tuple[float, float]]:
    """The grid's (η, λ) pairs, η-major: member i is (etas[i // len(lmbdas)], lmbdas[i %
    len(lmbdas)])."""
    return [(e, l) for e in etas for l in lmbdas]


def start_state(cfg, seed: int = 0):
    """The seed's initial weights and training key, split as `common.run_seeds` does."""
    k_init, k_train = jax.random.split(jax.random.key(seed))
    return init.init_params(k_init, cfg.network().sizes, cfg.init), k_train


def vmapped(cfg, grid, training, evaluation, verbose: bool) -> tuple[list[float], float]:
    """Train every grid member in one vmapped program; each member's best validation count, and the
    wall time."""
    net, n = cfg.network(), len(training[1])
    params, key = start_state(cfg)
    k = len(grid)
    start = time.perf_counter()
    opt = optim.sgd(cfg.eta, lmbda=cfg.lmbda, n=n)
    state = sweep.init(sweep.stack([params] * k), opt,
                       {"learning_rate": jnp.array([e for e, _ in grid]),
                                                        "lmbda": jnp.array([l for _, l in grid])},
                       jnp.stack([key] * k))
    _, hist = train.fit(train.make_epoch(common.gradient_fn(net, cfg.gradient), opt, cfg.batch_size,
                                         members=True),
                        state, training, epochs=cfg.epochs,
                        pieces=[monitor.Evaluate(partial(network.evaluate, net=net), evaluation,
                                                 members=True)],
                        on_epoch=progress.progress_printer(f"{k} members", cfg.epochs,
                                                           len(evaluation[1]))
                        if verbose else None)
    return [max(epoch[i] for epoch in hist["evaluation_accuracy"])
            for i in range(k)], time.perf_counter() - start


def one_at_a_time(cfg, grid, training, evaluation, verbose: bool) -> tuple[list[float], float]:
    """The same grid as separate `train.fit` runs, one after another; best validation counts and
    wall time."""
    net, n = cfg.network(), len(training[1])
    params, key = start_state(cfg)
    best, start = [], time.perf_counter()
    for eta, lmbda in grid:
        opt = optim.sgd(eta, lmbda=lmbda, n=n)
        _, hist = train.fit(train.make_epoch(common.gradient_fn(net, cfg.gradient), opt,
                                             cfg.batch_size),
                            train.State(params, opt.init(params), key), training, epochs=cfg.epochs,
                            pieces=[monitor.Evaluate(partial(network.evaluate, net=net),
                                                     evaluation), guard.Guard()])
        best.append(max(hist["evaluation_accuracy"]))
        if verbose:
            print(f"[one at a time] η={eta:g} λ={lmbda:g}: best {best[-1]} / {len(evaluation[1])} "
                  f"(elapsed {time.perf_counter() - start:.1f} s)", flush=True)
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
    ax.set_xlabel("λ (L2, network2 scaling)")
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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="\n".join(__doc__.splitlines()[2:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=data.DATASETS, default="fashion-mnist",
                   help="the data (default fashion-mnist)")
    p.add_argument("--etas", type=floats, default=ETAS, help="the grid's η values (default "
                                                             f"{','.join(map(str, ETAS))})")
    p.add_argument("--lmbdas", type=floats, default=LMBDAS,
                   help=f"the grid's λ values (default {','.join(map(str, LMBDAS))})")
    p.add_argument("--epochs", type=command_line.positive_int, default=BASE.epochs,
                   help=f"default {BASE.epochs}, as 3b")
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
    etas, lmbdas = (args.etas[:2], args.lmbdas[:2]) if args.quick else (args.etas, args.lmbdas)
    cfg = dataclasses.replace(BASE, dataset=args.dataset, epochs=1 if args.quick else args.epochs,
                              train_size=1000 if args.quick else args.train_size,
                              eval_size=500 if args.quick else None, lmbda=lmbdas[0])
    training, evaluation = common.select_data(data.load(args.dataset, args.data_dir), cfg)
    grid, n_eval = members(etas, lmbdas), len(evaluation[1])
    best, sweep_s = vmapped(cfg, grid, training, evaluation, not args.quiet)
    result = {"dataset": args.dataset, "network": "FC " + ",".join(map(str, cfg.sizes)),
              "etas": list(etas), "lmbdas": list(lmbdas), "epochs": cfg.epochs,
              "train_size": len(training[1]), "n_eval": n_eval,
              "best_validation_percent": [result_files.percent(b, n_eval) for b in best],
              "sweep_s": sweep_s, "one_at_a_time_s": None, "config": dataclasses.asdict(cfg),
              **result_files.environment()}
    if not args.no_compare:
        single, result["one_at_a_time_s"] = one_at_a_time(cfg, grid, training, evaluation,
                                                          not args.quiet)
        result["one_at_a_time_percent"] = [result_files.percent(b, n_eval) for b in single]
        # equal up to float rounding, which vmap may reorder
        result["one_at_a_time_matches"] = single == best
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"sweep_{args.dataset}.json").write_text(json.dumps(result, indent=1))
    png = heat_map(result, out / f"sweep_{args.dataset}.png")
    e, l = grid[int(np.argmax(best))]
    print(f"best: η={e:g} λ={l:g}, {max(result['best_validation_percent']):.2f}% validation; "
          f"{len(grid)} configurations as one program {sweep_s:.1f} s"
          + (f", one at a time {result['one_at_a_time_s']:.1f} s"
             if result["one_at_a_time_s"] is not None else ""))
    print(f"wrote {png}")
    return result


if __name__ == "__main__":
    main()
