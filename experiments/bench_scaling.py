"""Scaling curves of the compiled epoch: wall time against members, hidden width and data size.

    python -m experiments.bench_scaling [--quick] [--rounds N] [--steps N] [--out DIR]

All three use chapter 1's network at mini-batch 10 (sigmoid, quadratic cost, η = 3,
hand-derived backprop) and the same timing as `experiments.bench` (compile apart, then
the best of ``--rounds`` runs, wall and process CPU time):

- members: k = 1, 2, 4, …, 64 networks trained as one vmapped program
  (``nnjax.train.make_epoch(..., members=True)``, each member its own initialisation and shuffle),
  timing ``--steps`` mini-batches and scaling to the 50,000-image epoch;
- width: [784, h, 10] for h from 30 to 3,000, ``--steps`` mini-batches, scaled likewise;
- data: whole epochs over the first n of the 250,000 expanded images (the book's
  one-pixel shifts, `nnjax.expand.shifts`), n = 50k … 250k.
Each point also records its FLOP floor (`experiments.bench_flops`). Writes
DIR/bench_scaling.json; `experiments.bench_plots` draws it.
"""

import argparse

import jax
import jax.numpy as jnp

from experiments import bench, bench_flops, command_line
from nnjax import backprop, expand, init, optim, train
from nnjax.network import Network

ETA, BATCH, EPOCH = 3.0, 10, 50_000
MEMBERS, WIDTHS, SIZES = (1, 2, 4, 8, 16, 32, 64), (30, 100, 300, 1000, 3000), (50_000, 100_000,
                                                                                150_000,
                                                                               200_000, 250_000)


def program(hidden: int, members: int | None):
    """The jitted epoch of [784, hidden, 10] and its leading arguments; ``members`` stacks that
    many."""
    net, opt = Network((784, hidden, 10)), optim.sgd(ETA)
    grad = backprop.make_grad(net)
    if members is None:
        params = init.init_params(jax.random.key(0), net.sizes, init.large)
        return train.make_epoch(grad, opt, BATCH), (params, opt.init(params), jax.random.key(1))
    keys = jax.random.split(jax.random.key(0), members)
    params = jax.vmap(lambda k: init.init_params(k, net.sizes, init.large))(keys)
    return train.make_epoch(grad, opt, BATCH, members=True), (params, jax.vmap(opt.init)(params),
                                                              keys)


def point(hidden: int, members: int | None, x, y, rounds: int, scale: float, rate: dict) -> dict:
    """One curve point: epoch seconds (wall, CPU), compile seconds and the FLOP floor."""
    epoch, state = program(hidden, members)
    timing = bench.compiled_epoch(epoch, state[:2], x, y, rounds, scale, key=state[2])
    flops = bench_flops.training_flops(bench_flops.dense_matmuls((784, hidden,
                                                                  10))) * x.shape[0] * scale
    return {**timing, "floor_s": flops * (members or 1) / rate["flops_per_s"]}


def curves(images, expanded, args, rate: dict) -> dict:
    """The three curves, each a list of points."""
    x, y = images(args.steps * BATCH)
    scale = EPOCH / (args.steps * BATCH)
    out = {"members": [], "width": [], "data": []}
    for k in args.members:
        out["members"].append({"members": k, **point(30, k, x, y, args.rounds, scale, rate)})
        print("members", out["members"][-1], flush=True)
    for h in args.widths:
        out["width"].append({"hidden": h, **point(h, None, x, y, args.rounds, scale, rate)})
        print("width", out["width"][-1], flush=True)
    for n in args.sizes:
        out["data"].append({"images": n, **point(30, None, *(a[:n] for a in expanded), args.rounds,
                                                 1.0, rate)})
        print("data", out["data"][-1], flush=True)
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run: small points, "
                                                        "one round")
    p.add_argument("--rounds", type=command_line.positive_int, default=3, help="timed runs per "
                                                                               "point (best is "
                                                                               "kept)")
    p.add_argument("--steps", type=command_line.positive_int, default=1000,
                   help="mini-batches timed per members/width point")
    p.add_argument("--out", default="results", help="directory for bench_scaling.json")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, "
                                                    "else random data)")
    args = p.parse_args(argv)
    args.members, args.widths, args.sizes = MEMBERS, WIDTHS, SIZES
    if args.quick:
        args.rounds, args.steps, args.members, args.widths, args.sizes = 1, 20, (1, 2), (30,
            60), (1000, 2000)
    images, source = bench.training_images(args.data_dir)
    x, y = images(EPOCH)
    expanded = expand.shifts(jnp.asarray(x).reshape(-1, 28, 28), jnp.asarray(y), jax.random.key(0))
    expanded = (expanded[0].reshape(-1, 784), expanded[1])
    load_before = bench.load_average()
    rate = bench.measured_rate(512 if args.quick else 2048)
    result = {"config": {k: v for k, v in vars(args).items() if k not in ("out", "data_dir")},
              "data": source, "batch_size": BATCH, "epoch_images": EPOCH, "matmul_rate": rate,
              "load_average_before": load_before, "curves": curves(images, expanded, args, rate),
              "load_average_after": bench.load_average(), "environment": bench.environment()}
    bench.save(args.out, "bench_scaling", result)
    return result


if __name__ == "__main__":
    main()
