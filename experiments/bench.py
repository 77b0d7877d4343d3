"""Benchmark: one epoch of chapter 1's [784, 30, 10] network at mini-batch 10.

    python -m experiments.bench [--out DIR] [--repeats N] [--data-dir DIR]

Four implementations of the same algorithm, timed in one process on one machine:
  (a) nnjax's compiled epoch (one `lax.scan` program; hand-derived and autodiff gradients),
  (b) NumPy, the book's per-example network.py algorithm (`experiments.numpy_baselines`),
  (c) NumPy, the fully matrix-based mini-batch form,
  (d) a jitted nnjax step called from a Python loop.
Each is timed over whole epochs of the 50,000 training images (the best of ``--repeats``;
compile time is reported separately). Writes DIR/bench.json and DIR/bench.md.
"""

import argparse
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from experiments import common, numpy_baselines as nb
from nnjax import autodiff, backprop, data, init, optim, train
from nnjax.network import Network

SIZES, ETA, BATCH = (784, 30, 10), 3.0, 10


def best_of(fn, repeats: int) -> dict:
    """The fastest of ``repeats`` calls of fn (fn must block until done): wall seconds, and
    this process's CPU seconds, which other processes competing for the cores inflate less."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"seconds": min(wall), "cpu_seconds": min(cpu)}


def nnjax_epoch(grad_fn, x, y, repeats: int) -> dict:
    """(a): the compiled epoch; returns compile+first-run and steady-state seconds."""
    optimizer = optim.sgd(ETA)
    epoch = jax.jit(train.make_epoch(grad_fn, optimizer, BATCH))
    params = init.init_params(jax.random.key(0), SIZES, init.large)
    opt_state = optimizer.init(params)
    x, y = jax.device_put(x), jax.device_put(y)
    keys = iter(jax.random.split(jax.random.key(1), repeats + 1))
    start = time.perf_counter()
    jax.block_until_ready(epoch(params, opt_state, next(keys), x, y))
    first = time.perf_counter() - start
    timing = best_of(lambda: jax.block_until_ready(epoch(params, opt_state, next(keys), x, y)), repeats)
    return {**timing, "compile_and_first_s": first}


def python_loop_epoch(grad_fn, x, y, repeats: int) -> dict:
    """(d): the same step, jitted alone, driven by a Python loop over mini-batches."""
    optimizer = optim.sgd(ETA)
    step = jax.jit(train.make_step(grad_fn, optimizer), donate_argnums=(0, 1))
    x, y = jax.device_put(x), jax.device_put(y)
    rng = np.random.default_rng(0)

    def one_epoch():
        params = init.init_params(jax.random.key(0), SIZES, init.large)
        opt_state = optimizer.init(params)
        for idx in rng.permutation(len(y))[: len(y) // BATCH * BATCH].reshape(-1, BATCH):
            params, opt_state = step(params, opt_state, x[idx], y[idx])
        jax.block_until_ready(params)

    return best_of(one_epoch, repeats)


def numpy_epoch(epoch_fn, x, y, repeats: int) -> dict:
    """(b), (c): a NumPy epoch from the same kind of start."""
    rng = np.random.default_rng(0)
    ws, bs = nb.init_large(rng, SIZES)
    return best_of(lambda: epoch_fn(ws, bs, x, y, ETA, BATCH, rng), repeats)


def load_training(data_dir):
    """MNIST's 50,000 training images if available, else random data of the same shape."""
    try:
        tr = data.load_mnist(data_dir, download=False).training
        return tr.x, tr.y, "MNIST training split"
    except data.DataError:
        rng = np.random.default_rng(0)
        return (rng.random((50_000, 784), dtype=np.float32), rng.integers(0, 10, 50_000).astype(np.int32),
                "random data of MNIST's shape (MNIST not found)")


def markdown(result: dict) -> str:
    rows = ["| implementation | wall s / epoch | (a) faster by, wall | CPU s / epoch | (a) faster by, CPU |",
            "|---|---|---|---|---|"]
    a = result["implementations"]["a_nnjax_scan_backprop"]
    for name, r in result["implementations"].items():
        rows.append(f"| {name} | {r['seconds']:.3f} | {r['seconds'] / a['seconds']:.1f}× | "
                    f"{r['cpu_seconds']:.3f} | {r['cpu_seconds'] / a['cpu_seconds']:.1f}× |")
    env = result["environment"]
    rows.append(f"\n{env['machine']}; {env['device']}; jax {env['jax_version']}; data: {result['data']}; "
                f"load average before/after: {result['load_average_before']} / {result['load_average_after']}.")
    return "\n".join(rows) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results", help="directory for bench.json and bench.md")
    p.add_argument("--repeats", type=int, default=3, help="timed epochs per implementation (best is kept)")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, else random data)")
    p.add_argument("--skip-slow", action="store_true", help="skip (b) and (d), the slow Python loops")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    x, y, source = load_training(args.data_dir)
    net = Network(SIZES)
    load_before = os.getloadavg()
    impl = {
        "a_nnjax_scan_backprop": nnjax_epoch(backprop.make_grad(net), x, y, args.repeats),
        "a_nnjax_scan_autodiff": nnjax_epoch(autodiff.make_grad(net), x, y, args.repeats),
        "c_numpy_matrix": numpy_epoch(nb.sgd_epoch_matrix, x, y, args.repeats),
    }
    if not args.skip_slow:
        impl["b_numpy_per_example"] = numpy_epoch(nb.sgd_epoch_per_example, x, y, max(1, args.repeats // 2))
        impl["d_nnjax_step_python_loop"] = python_loop_epoch(backprop.make_grad(net), x, y, max(1, args.repeats // 2))
    a = impl["a_nnjax_scan_backprop"]
    result = {
        "network": list(SIZES), "eta": ETA, "batch_size": BATCH, "data": source, "repeats": args.repeats,
        "implementations": impl,
        "ratios_vs_a": {k: v["seconds"] / a["seconds"] for k, v in impl.items()},
        "cpu_ratios_vs_a": {k: v["cpu_seconds"] / a["cpu_seconds"] for k, v in impl.items()},
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "environment": {**common.environment(), "numpy": np.__version__,
                        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=1))
    (out / "bench.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
