"""Benchmark suite: a training epoch of the book's networks at mini-batch 10, by several
implementations.

    python -m experiments.bench [--only IDS] [--quick] [--out DIR] [--repeats N] [--steps N]
                                [--slow-steps N] [--unroll N] [--torch-threads N] [--data-dir DIR]

Networks (each exactly as its chapter script trains it): ``ch1`` (1a: [784, 30, 10],
sigmoid, quadratic cost), ``ch3`` (3g: [784, 100, 10], cross-entropy, L2), ``6b``,
``6f`` and ``6k`` (chapter 6's conv nets; 6k trains on the 250,000 expanded images).
Rows, all in one process on one machine:
  (a) nnjax's epoch compiled as one `lax.scan` (FC nets: hand-derived and autodiff
      gradients, and hand-derived with the loop unrolled ``--unroll`` times; conv nets:
      chapter 6's autodiff, and `nnjax.conv_backprop` where there is no dropout);
      compile time is reported apart,
  (b) NumPy, the book's per-example network.py algorithm (FC nets),
  (c) NumPy, the fully matrix-based mini-batch form (FC nets),
  (d) the jitted nnjax step called from a Python loop (FC nets),
  (e) PyTorch eager, the same network and mini-batch (skipped if torch is missing),
  (f) the FLOP floor: the epoch's matmul FLOPs over the measured large-matmul rate
      (`experiments.bench_flops`).
(b) and (c) are the book's sigmoid + quadratic-cost network; for ch3 they keep its
shape but not its cost or L2 (the same products per step). ``--only`` takes network ids and/or
implementation names (nnjax, numpy, loop, torch), e.g. ``--only ch1,6f,nnjax,torch``.
Each row times ``--steps`` mini-batches (``--slow-steps`` for the slow rows (b), (d),
(e) and every conv net), at most an epoch, and scales to a whole epoch; wall and
process CPU time are both the best of ``--repeats``. Writes DIR/bench.json and DIR/bench.md.
"""

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import jax
import numpy as np

from experiments import bench_flops, ch1, ch3, ch6, command_line, common, result_files
from experiments import numpy_baselines as nb
from experiments.run_config import RunConfig
from nnjax import data, init, optim, train

NETWORKS = {"ch1": ("1a", ch1.RUNS), "ch3": ("3g", ch3.RUNS), "6b": ("6b", ch6.RUNS),
            "6f": ("6f", ch6.RUNS), "6k": ("6k", ch6.RUNS)}
EPOCH_IMAGES = {"6k": 250_000}  # the others train on MNIST's 50,000 training images
IMPLS = ("nnjax", "numpy", "loop", "torch")


def config(net_id: str):
    """The chapter script's config of a network id."""
    run_id, runs = NETWORKS[net_id]
    return next(c for c in runs if c.id == run_id)


def select(only: str | None) -> tuple[list[str], list[str]]:
    """(network ids, implementations) named by ``--only``; a kind not named means all of it."""
    ids = command_line.parse_only(only, [*NETWORKS, *IMPLS])
    return [n for n in NETWORKS if n in ids] or list(NETWORKS), [i for i in IMPLS
                                                                 if i in ids] or list(IMPLS)


def best_of(fn, repeats: int, scale: float = 1.0) -> dict:
    """The fastest of ``repeats`` calls of fn (which must block until done), times ``scale``:
    wall seconds, and this process's CPU seconds, which other processes inflate less."""
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"seconds": min(wall) * scale, "cpu_seconds": min(cpu) * scale}


def nnjax_program(cfg, gradient: str, n: int, unroll: int = 1):
    """The jitted epoch of a config, its (params, opt_state) and its step, for a training set of n
    images.

    unroll: steps per loop iteration (`nnjax.train.make_epoch`; FC nets only).
    """
    key = jax.random.key(0)
    if isinstance(cfg, RunConfig):
        net, opt = cfg.network(), common.optimizer_for(cfg, n)
        grad = common.gradient_fn(net, gradient)
        params = init.init_params(key, net.sizes, cfg.init)
        return train.make_epoch(grad, opt, cfg.batch_size, unroll=unroll), (params,
            opt.init(params)), (grad, opt)
    net, opt, epoch, _ = ch6.programs(dataclasses.replace(cfg, gradient=gradient), n, 1)
    params = net.init(key, (28, 28, 1))[1]
    return epoch, (params, opt.init(params)), None


def compiled_epoch(epoch, state, x, y, repeats: int, scale: float, key=None) -> dict:
    """(a): compile once (timed apart), then the best of ``repeats`` runs of the compiled epoch.

    key: the epoch's key (keys, for members); default ``jax.random.key(1)``.
    """
    key = jax.random.key(1) if key is None else key
    args = (train.State(*state, key), jax.device_put(x), jax.device_put(y))
    start = time.perf_counter()
    run = epoch.lower(*args).compile()
    compile_s = time.perf_counter() - start
    return {**best_of(lambda: jax.block_until_ready(run(*args)), repeats, scale),
            "compile_s": compile_s}


def python_loop_epoch(grad, opt, state, x, y, batch_size: int, repeats: int, scale: float) -> dict:
    """(d): the same step, jitted alone, driven by a Python loop over mini-batches."""
    step = jax.jit(train.make_step(grad, opt))
    x, y = jax.device_put(x), jax.device_put(y)
    batches = np.arange(len(y) // batch_size * batch_size).reshape(-1, batch_size)
    jax.block_until_ready(step(*state, x[batches[0]], y[batches[0]]))  # compile

    def epoch():
        params, opt_state = state
        for idx in batches:
            params, opt_state = step(params, opt_state, x[idx], y[idx])
        jax.block_until_ready(params)

    return best_of(epoch, repeats, scale)


def numpy_epoch(epoch_fn, cfg: RunConfig, x, y, repeats: int, scale: float) -> dict:
    """(b), (c): a NumPy epoch of the book's network of the config's shape, from N(0, 1) weights."""
    rng = np.random.default_rng(0)
    ws, bs = nb.init_large(rng, cfg.sizes)
    return best_of(lambda: epoch_fn(ws, bs, x, y, cfg.eta, cfg.batch_size, rng), repeats, scale)


def torch_epoch(cfg, x, y, n: int, repeats: int, scale: float, threads: int) -> dict | None:
    """(e): PyTorch's eager loop on the twin network, or None (with a message) without torch."""
    try:
        import torch

        from experiments import bench_torch
    except ImportError:
        print("PyTorch is not installed (pip install 'nnjax[bench]'): skipping the PyTorch eager "
              "rows", flush=True)
        return None
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if isinstance(cfg, RunConfig):
        model, loss, decay = bench_torch.fc_net(cfg.sizes,
                                                cfg.activation), bench_torch.cost(
                                                    cfg.cost), cfg.lmbda / n
    else:
        model = bench_torch.torch_net(cfg.convs, cfg.fc, cfg.activation, cfg.dropout)
        loss = bench_torch.cost("log_likelihood")
        # ∂(s·λ/2·Σw²)/∂w = s·λ·w
        decay = cfg.lmbda * optim.decay_per_lambda(n, cfg.l2_scaling, cfg.batch_size)
        x = np.transpose(x, (0, 3, 1, 2))  # NHWC → NCHW
    # beside nnjax
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    run = bench_torch.epoch_fn(model, loss, x, y, cfg.eta, decay, cfg.batch_size, device)
    return {**best_of(run, repeats, scale), "threads": threads, "device": device}


def flop_floor(cfg, n: int, rate: dict) -> dict:
    """(f): the epoch's matmul FLOPs over the large-matmul rate (wall and CPU seconds)."""
    is_fc = isinstance(cfg, RunConfig)
    matmuls = bench_flops.dense_matmuls(cfg.sizes) if is_fc else bench_flops.arch_matmuls(
        cfg.arch())
    flops = bench_flops.training_flops(matmuls) * (n // cfg.batch_size * cfg.batch_size)
    return {"seconds": flops / rate["flops_per_s"], "cpu_seconds": flops / rate["flops_per_cpu_s"],
            "flops_per_epoch": flops, "matmuls": matmuls}


def bench_network(net_id: str, impls: list[str], images, args, rate: dict) -> dict:
    """Every selected row for one network, each scaled to a whole epoch."""
    cfg = config(net_id)
    is_fc = isinstance(cfg, RunConfig)
    n = EPOCH_IMAGES.get(net_id, 50_000)
    epoch_steps = n // cfg.batch_size

    def subset(slow: bool):
        steps = min(epoch_steps, args.slow_steps if slow or not is_fc else args.steps)
        x, y = images(steps * cfg.batch_size)
        return (x if is_fc else x.reshape(-1, 28, 28, 1)), y, steps, epoch_steps / steps

    rows = {}
    if "nnjax" in impls:
        x, y, steps, scale = subset(slow=False)
        gradients = ("backprop", "autodiff") if is_fc else ("autodiff",) + ("backprop",) * (
            not cfg.dropout)
        variants = {f"a_nnjax_scan_{g}": (g, 1) for g in gradients}
        if is_fc and args.unroll > 1:
            variants[f"a_nnjax_scan_backprop_unroll{args.unroll}"] = ("backprop", args.unroll)
        for name, (gradient, unroll) in variants.items():
            epoch, state, _ = nnjax_program(cfg, gradient, n, unroll)
            rows[name] = {**compiled_epoch(epoch, state, x, y, args.repeats, scale),
                          "timed_steps": steps}
    if is_fc and "numpy" in impls:
        for name, fn, slow in (("b_numpy_per_example", nb.sgd_epoch_per_example, True),
                               ("c_numpy_matrix", nb.sgd_epoch_matrix, False)):
            x, y, steps, scale = subset(slow)
            rows[name] = {**numpy_epoch(fn, cfg, x, y, args.repeats, scale), "timed_steps": steps}
    if is_fc and "loop" in impls:
        x, y, steps, scale = subset(slow=True)
        _, state, (grad, opt) = nnjax_program(cfg, "backprop", n)
        rows["d_nnjax_step_python_loop"] = {
            **python_loop_epoch(grad, opt, state, x, y, cfg.batch_size, args.repeats, scale),
            "timed_steps": steps}
    if "torch" in impls:
        x, y, steps, scale = subset(slow=True)
        row = torch_epoch(cfg, x, y, n, args.repeats, scale, args.torch_threads)
        if row is not None:
            rows["e_torch_eager"] = {**row, "timed_steps": steps}
    rows["f_flop_floor"] = flop_floor(cfg, n, rate)
    ref = next(iter(rows.values()))
    return {"config": {k: v for k, v in dataclasses.asdict(cfg).items()
                       if k not in ("book", "note")},
            "epoch_images": n, "epoch_steps": epoch_steps, "implementations": rows,
            "ratios_vs_a": {k: r["seconds"] / ref["seconds"] for k, r in rows.items()},
            "cpu_ratios_vs_a": {k: r["cpu_seconds"] / ref["cpu_seconds"] for k, r in rows.items()}}


def training_images(data_dir):
    """``images(k)``: the first k of MNIST's training images and labels, or random data of that
    shape."""
    try:
        tr = data.load_mnist(data_dir, download=False).training
        x, y, source = tr.x, tr.y, "MNIST training split"
    except data.DataError:
        rng = np.random.default_rng(0)
        x = rng.random((50_000, 784), dtype=np.float32)
        y = rng.integers(0, 10, 50_000).astype(np.int32)
        source = "random data of MNIST's shape (MNIST not found)"
    return lambda k: (x[:k], y[:k]), source


def markdown_network(net_id: str, r: dict) -> list[str]:
    """One network's table: a row per implementation, with (a)'s speed-up over it."""
    rows = [f"### {net_id}: {r['epoch_images']:,} images, "
            f"{r['implementations']['f_flop_floor']['flops_per_epoch']:.3g} matmul FLOPs per "
                                                                              "epoch\n",
            "| implementation | timed steps | compile s | wall s / epoch | (a) faster by, wall | "
            "CPU s / epoch | (a) faster by, CPU |", "|---|---|---|---|---|---|---|"]
    for name, row in r["implementations"].items():
        compile_s = f"{row['compile_s']:.2f}" if "compile_s" in row else "–"
        steps = f"{row['timed_steps']:,}" if "timed_steps" in row else "–"
        rows.append(f"| {name} | {steps} | {compile_s} | {row['seconds']:.3f} | "
                    f"{r['ratios_vs_a'][name]:.1f}× | {row['cpu_seconds']:.3f} | "
                                                        f"{r['cpu_ratios_vs_a'][name]:.1f}× |")
    return rows + [""]


def markdown(result: dict) -> str:
    env, rate = result["environment"], result["matmul_rate"]
    lines = [line for net_id, r in result["networks"].items()
             for line in markdown_network(net_id, r)]
    lines.append(
        "Each row timed its 'timed steps' mini-batches of 10 and is scaled to the whole epoch "
        f"(best of {result['config']['repeats']}); (a) is the first row of each table, so (f)'s "
        "ratio below 1× says how far (a) is above the FLOP floor. Floor rate: "
        f"{rate['flops_per_s'] / 1e9:.1f} GFLOP/s wall, {rate['flops_per_cpu_s'] / 1e9:.1f} "
                                                          "GFLOP/s per CPU second "
                                                          f"({rate['size']}² float32 matmul). "
        f"PyTorch threads: {result['config']['torch_threads']}.\n\n"
        f"{env['machine']}; {env['device']}; jax {env['jax_version']}; torch "
        f"{env.get('torch', '–')}; data: {result['data']}; load average before/after: "
                                     f"{result['load_average_before']} / "
        f"{result['load_average_after']}.")
    return "\n".join(lines) + "\n"


def measured_rate(size: int, repeats: int = 5) -> dict:
    """FLOPs per wall second and per process CPU second of a jitted (size, size) float32 matmul
    (best of repeats)."""
    a = jax.random.normal(jax.random.key(0), (size, size))
    mm = jax.jit(jax.numpy.matmul)
    jax.block_until_ready(mm(a, a))
    t = best_of(lambda: jax.block_until_ready(mm(a, a)), repeats)
    return {"size": size, "flops_per_s": 2 * size**3 / t["seconds"],
            "flops_per_cpu_s": 2 * size**3 / t["cpu_seconds"]}


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages: how busy the shared cores were."""
    return [round(v, 2) for v in os.getloadavg()]


def save(out_dir, name: str, result: dict, md: str | None = None) -> None:
    """Write DIR/name.json (and DIR/name.md when ``md`` is given)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    if md is not None:
        (out / f"{name}.md").write_text(md)


def environment() -> dict:
    try:
        import torch
        extra = {"torch": torch.__version__}
    except ImportError:
        extra = {}
    return {**result_files.environment(), "numpy": np.__version__,
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""), **extra}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default=None, help=f"networks {list(NETWORKS)} and/or implementations "
                                                f"{list(IMPLS)}")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run (few steps, one "
                                                        "repeat)")
    p.add_argument("--out", default="results", help="directory for bench.json and bench.md")
    p.add_argument("--repeats", type=command_line.positive_int, default=3,
                   help="timed runs per row (best is kept)")
    p.add_argument("--steps", type=command_line.positive_int, default=5000, help="mini-batches "
                                                                                 "timed by the "
                                                                                 "fast FC rows")
    p.add_argument("--slow-steps", type=command_line.positive_int, default=1000,
                   help="mini-batches timed by slow rows")
    p.add_argument("--unroll", type=command_line.positive_int, default=8,
                   help="also time the FC nets' epoch with this scan unroll (1: not)")
    p.add_argument("--torch-threads", type=command_line.positive_int, default=1,
                   help="PyTorch intra-op threads")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, "
                                                    "else random data)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.slow_steps, args.repeats = min(args.steps, 100), min(args.slow_steps,
                                                                              20), 1
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    net_ids, impls = select(args.only)
    images, source = training_images(args.data_dir)
    load_before = load_average()
    rate = measured_rate(512 if args.quick else 2048)
    networks = {}
    for net_id in net_ids:
        networks[net_id] = bench_network(net_id, impls, images, args, rate)
        print("\n".join(markdown_network(net_id, networks[net_id])), flush=True)
    result = {"config": {k: v for k, v in vars(args).items() if k not in ("out", "data_dir")} | {
                  "networks": net_ids, "implementations": impls},
              "data": source, "networks": networks, "matmul_rate": rate,
              "load_average_before": load_before, "load_average_after": load_average(),
              "environment": environment()}
    save(args.out, "bench", result, markdown(result))
    print(markdown(result).split("\n\n")[-1], flush=True)
    return result


if __name__ == "__main__":
    main()
