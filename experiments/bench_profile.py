"""Where a mini-batch-10 step of the ch1 network's compiled epoch spends its time, and levers on it.

    python -m experiments.bench_profile [--steps N] [--rounds N] [--out DIR]

Each program below is one `lax.scan` over ``--steps`` mini-batches of 10 from a fixed
set of [784, 30, 10] weights (chapter 1's network, hand-derived backprop, η = 3), timed
as µs per step. The pieces add one part of the step at a time, so the differences say
what each part costs: the loop alone, fetching the mini-batch, the forward pass, the
gradient, and the whole step with its update; first, for scale, a loop doing only the step's
two 10×784×30 products (forward, and BP4's for w¹). The levers are variants of the whole
step: `lax.scan`'s ``unroll``, the mini-batch as a contiguous slice of data permuted
once per epoch instead of a gather, a plain ``w − η∇`` update without optax, and the
images kept as bytes (as MNIST stores them) and turned into floats in the step.
"kernels" counts the operations XLA:CPU runs per iteration of the loop (fusions,
dots, copies; not tuple bookkeeping), each a dispatch in its runtime. All programs run
interleaved, ``--rounds`` times, and the best is kept, so load from other processes
hits them alike. Last, the whole step runs once more under JAX's profiler, with XLA:CPU's
per-kernel trace events switched on, and a third table gives each kernel's median time
per step (tracing adds a fraction of a µs to each). Writes DIR/bench_profile.json and
DIR/bench_profile.md.
"""

import argparse
import gzip
import json
import os
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from experiments import bench, command_line
from nnjax import backprop, init, network, optim, train
from nnjax.network import Network

NET = Network((784, 30, 10))
ETA, BATCH = 3.0, 10


def scan_program(body, steps: int):
    """``run(carry, x, y)``: body(carry, x[idx], y[idx]) for each of ``steps`` fixed-order
    mini-batches."""
    def run(carry, x, y):
        indices = train.batch_indices(None, steps * BATCH, BATCH)
        return lax.scan(lambda c, idx: (body(c, x[idx], y[idx]), None), carry, indices)[0]
    return run


def pieces(params, steps: int) -> dict:
    """Programs that add one part of the step at a time: name → (function, (carry,))."""
    grad = backprop.make_grad(NET)

    def forward(c, xb, yb):
        return c + jnp.sum(network.feedforward(params, xb, NET))

    def gradient(c, xb, yb):
        return jax.tree.map(jnp.add, c, grad(params, xb, yb))

    # the step's two 10×784×30 products on contiguous mini-batches, and nothing else
    def products(w, x, y):
        def body(w, i):
            xb = lax.dynamic_slice_in_dim(x, i * BATCH, BATCH)
            return w - 1e-6 * (xb @ w.T).T @ xb, None
        return lax.scan(body, w, jnp.arange(steps))[0]

    zero = (jnp.zeros(()),)
    return {
        "the two large products alone": (products, (params[0]["w"],)),
        # a carry XLA cannot fold
        "loop only": (scan_program(lambda c, xb, yb: 0.5 * c + 1, steps), zero),
        "+ gather the mini-batch": (scan_program(lambda c, xb, yb: c + jnp.sum(xb) + jnp.sum(yb),
                                                 steps), zero),
        "+ forward pass": (scan_program(forward, steps), zero),
        "+ backward pass (gradient)": (scan_program(gradient,
                                                    steps), (jax.tree.map(jnp.zeros_like,
                                                                          params),)),
    }


def contiguous_epoch(grad, opt, steps: int):
    """The whole step, each mini-batch a slice of data permuted once (one gather per epoch, not per
    step)."""
    step = train.make_step(grad, opt)

    def epoch(params, opt_state, key, x, y):
        order = jax.random.permutation(key, x.shape[0])[: steps * BATCH]
        xs, ys = x[order], y[order]

        def body(carry, i):
            xb, yb = (lax.dynamic_slice_in_dim(a, i * BATCH, BATCH) for a in (xs, ys))
            return step(*carry, xb, yb), None
        return lax.scan(body, (params, opt_state), jnp.arange(steps))[0]
    return epoch


def plain_update_epoch(grad, steps: int):
    """The whole step with w → w − η∇ written out (no optax state), same gather per step."""
    def body(params, xb, yb):
        return jax.tree.map(lambda p, g: p - ETA * g, params, grad(params, xb, yb))
    run = scan_program(body, steps)
    return lambda params, opt_state, key, x, y: run(params, x, y)


def uint8_epoch(grad, opt):
    """The whole step on images kept as bytes (pixel·255), turned into floats in the step: a quarter
    of the bytes to gather. Its leading arguments end with the byte images; the float ones are
    ignored."""
    epoch = classic(train.make_epoch(lambda p, xb, yb: grad(p, xb.astype(jnp.float32) / 255, yb),
                                     opt, BATCH))
    return lambda params, opt_state, key, x8, x, y: epoch(params, opt_state, key, x8, y)


def classic(epoch):
    """``train.make_epoch``'s program as ``epoch(params, opt_state, key, x, y) -> (params,
    opt_state)``."""
    def run(params, opt_state, key, x, y):
        state = epoch(train.State(params, opt_state, key), x, y)
        return state.params, state.opt_state
    return run


def levers(params, x, steps: int) -> dict:
    """Variants of the whole step: name → (epoch function, its leading arguments)."""
    grad, opt = backprop.make_grad(NET), optim.sgd(ETA)
    state = (params, opt.init(params), jax.random.key(1))
    out = {f"step, unroll {u}": (classic(train.make_epoch(grad, opt, BATCH, unroll=u)), state)
           for u in (1, 2, 4, 8, 16)}
    out["step, contiguous slices"] = (contiguous_epoch(grad, opt, steps), state)
    out["step, plain w − η∇ update"] = (plain_update_epoch(grad, steps), state)
    out["step, images as uint8"] = (uint8_epoch(grad, opt), (*state,
                                                             jnp.round(x * 255).astype(jnp.uint8)))
    return out


def loop_kernels(compiled) -> int:
    """Operations in the largest while-loop body of a compiled program (the scan's step)."""
    text = compiled.as_text()
    bodies = set(re.findall(r"body=(%[\w.\-]+)", text))
    skip = ("parameter(", "get-tuple-element(", "constant(", "tuple(", "bitcast(")

    def count(name):
        block = text.split(f"\n{name} ", 1)[1].split("\n}", 1)[0]
        return sum(1 for line in block.splitlines()[1:] if " = " in line
                   and not any(s in line for s in skip))
    return max(map(count, bodies))


def step_kernels(params, x, y, steps: int) -> list[dict]:
    """`kernel_times` of the whole step (hand backprop, optax SGD, unroll 1) over ``steps``
    mini-batches."""
    grad, opt = backprop.make_grad(NET), optim.sgd(ETA)
    args = (train.State(params, opt.init(params), jax.random.key(1)), x, y)
    return kernel_times(train.make_epoch(grad, opt, BATCH).lower(*args).compile(), args, steps)


def measure(programs: dict, x, y, rounds: int, steps: int) -> dict:
    """Compile every program, run them interleaved ``rounds`` times; µs per step (best) and kernels
    per step."""
    compiled = {}
    for name, (fn, lead) in programs.items():
        start = time.perf_counter()
        run = jax.jit(fn).lower(*lead, x, y).compile()
        compiled[name] = (run, lead, time.perf_counter() - start)
    times = {name: [] for name in programs}
    for _ in range(rounds):
        for name, (run, lead, _) in compiled.items():
            def once(run=run, lead=lead):
                return jax.block_until_ready(run(*lead, x, y))
            times[name].append(bench.best_of(once, 1, 1e6 / steps))
    return {name: {"us_per_step": min(t["seconds"] for t in times[name]),
                   "cpu_us_per_step": min(t["cpu_seconds"] for t in times[name]),
                   "kernels_per_iteration": loop_kernels(compiled[name][0]),
                   "compile_s": compiled[name][2]} for name in programs}


# XLA:CPU's per-kernel trace events; read when JAX starts
TRACE_FLAG = "--xla_cpu_enable_xprof_traceme=true"


def kernel_times(compiled, args: tuple, steps: int) -> list[dict]:
    """Median µs per step of each kernel that ``compiled`` runs once per step, from a profiler
    trace.

    Empty unless XLA_FLAGS held `TRACE_FLAG` when JAX started (`main` sets it).
    """
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            jax.block_until_ready(compiled(*args))
        events = [e for path in Path(tmp).rglob("*.trace.json.gz")
                  for e in json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]]
    durations = defaultdict(list)
    for e in events:
        if e.get("ph") == "X":
            durations[e["name"]].append(e["dur"])
    text = compiled.as_text()
    rows = []
    for name, d in durations.items():
        line = re.search(rf"^\s*(?:ROOT )?%{re.escape(name)} = (\S+) (\w[\w-]*)\(.*$", text, re.M)
        if len(d) == steps and line:  # one event per step: a kernel of the loop body
            kind = re.search(r'"kind":"(\w+)"|kind=(k\w+)', line.group(0))
            op = re.search(r'op_name="[^"]*/([^/"]+)"', line.group(0))
            rows.append({"kernel": name, "shape": line.group(1), "hlo": line.group(2),
                         "kind": next(filter(None, kind.groups())) if kind else "",
                         "jax_op": op.group(1) if op else "", "median_us": float(np.median(d))})
    return sorted(rows, key=lambda r: -r["median_us"])


def markdown(result: dict) -> str:
    lines = ["| program | µs / step, wall | µs / step, CPU | kernels / loop iteration | compile s |"
             , "|---|---|---|---|---|"]
    for name, r in {**result["pieces"], **result["levers"]}.items():
        lines.append(f"| {name} | {r['us_per_step']:.2f} | {r['cpu_us_per_step']:.2f} | "
                     f"{r['kernels_per_iteration']} | {r['compile_s']:.2f} |")
    env = result["environment"]
    lines.append(f"\n[784, 30, 10], mini-batch 10, {result['steps']:,} steps per run, best of "
                 f"{result['rounds']} interleaved rounds. An unrolled loop counts the kernels "
                                        "of all its unrolled steps. "
                 f"{env['machine']}; {env['device']}; jax {env['jax_version']}; load average "
                 f"before/after: {result['load_average_before']} / {result['load_average_after']}.")
    kernels = result.get("kernels", [])
    lines += ["", "Kernels of one step (the whole step, unroll 1), median µs per step under the "
                  "profiler:", "",
              "| kernel | HLO | kind | shape | from | µs |", "|---|---|---|---|---|---|"]
    lines += [f"| {k['kernel']} | {k['hlo']} | {k['kind']} | {k['shape']} | {k['jax_op']} | "
              f"{k['median_us']:.2f} |" for k in kernels] or ["| (no trace events: run in a fresh "
                                                              "process, as `main` sets XLA_FLAGS) "
                                                              "| | | | | |"]
    if kernels:
        lines.append(f"\nSum {sum(k['median_us'] for k in kernels):.1f} µs per step.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=command_line.positive_int, default=5000, help="mini-batches per "
                                                                                 "timed run")
    p.add_argument("--rounds", type=command_line.positive_int, default=5, help="interleaved rounds "
                                                                               "(best is kept)")
    p.add_argument("--out", default="results", help="directory for bench_profile.json and .md")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, "
                                                    "else random data)")
    args = p.parse_args(argv)
    if TRACE_FLAG not in os.environ.get("XLA_FLAGS", ""):  # before JAX starts its CPU backend
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TRACE_FLAG}".strip()
    images, source = bench.training_images(args.data_dir)
    x, y = (jax.device_put(a) for a in images(args.steps * BATCH))
    params = init.init_params(jax.random.key(0), NET.sizes, init.large)
    result = {"steps": args.steps, "rounds": args.rounds, "data": source,
              "load_average_before": bench.load_average(),
              "pieces": measure(pieces(params, args.steps), x, y, args.rounds, args.steps),
              "levers": measure(levers(params, x, args.steps), x, y, args.rounds, args.steps),
              "kernels": step_kernels(params, x, y, args.steps),
              "load_average_after": bench.load_average(), "environment": bench.environment()}
    bench.save(args.out, "bench_profile", result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
