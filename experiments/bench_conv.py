"""Which convolution and which gradient make the fastest compiled epoch here (ch6).

    python -m experiments.bench_conv [--nets 6b,6f] [--images 5000] [--rounds 3] [--out DIR]

Times one compiled epoch (a `lax.scan` of mini-batch-10 SGD steps, fixed order, as
network3.py trains) of each network for four gradient paths:
``autodiff/im2col`` and ``autodiff/lax`` (``jax.grad`` through `nnjax.conv`'s two
convolutions) and ``backprop/im2col`` and ``backprop/lax`` (`nnjax.conv_backprop`, by
hand). The variants run interleaved, ``--rounds`` times each, so load from other
processes hits them alike; it prints the fastest and median wall time and the median CPU time
(process time, less sensitive to that load) of the rounds, scaled to 50,000 images.
Images are random: the timing does not depend on the pixel values.
"""

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

from experiments import command_line, result_files
from nnjax import conv_backprop, convnet, optim, train

NETS = {
    "6b": dict(convs=(20,), fc=(100,), activation="sigmoid"),
    "6f": dict(convs=(20, 40), fc=(100,), activation="relu"),
}
VARIANTS = ("autodiff/im2col", "autodiff/lax", "backprop/im2col", "backprop/lax")


def epoch_fn(arch, variant: str, n: int, eta: float = 0.03, lmbda: float = 0.1,
             batch_size: int = 10):
    """A jitted epoch and its initial (params, opt_state) for one gradient variant."""
    method, impl = variant.split("/")
    net = convnet.build(arch, conv_impl=impl)
    _, params = net.init(jax.random.key(0), (28, 28, 1))
    grad = convnet.make_grad(net.apply) if method == "autodiff" else conv_backprop.make_grad(arch,
        impl=impl)
    opt = optim.sgd(eta, lmbda=lmbda, n=n, scaling="network3", batch_size=batch_size)
    return train.make_epoch(grad, opt, batch_size, shuffle=False), (params, opt.init(params))


def time_epochs(net_id: str, images: int, rounds: int, variants=VARIANTS) -> dict:
    """Seconds per 50,000-image epoch of each variant: fastest and median of ``rounds`` interleaved
    runs."""
    arch = convnet.network3_arch(**NETS[net_id])
    x = jax.random.uniform(jax.random.key(1), (images, 28, 28, 1))
    y = jax.random.randint(jax.random.key(2), (images,), 0, 10)
    fns = {v: epoch_fn(arch, v, images) for v in variants}
    for fn, state in fns.values():  # compile and warm up
        jax.block_until_ready(fn(train.State(*state, jax.random.key(0)), x, y))
    times, cpu = {v: [] for v in variants}, {v: [] for v in variants}
    for _ in range(rounds):
        for v, (fn, state) in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(train.State(*state, jax.random.key(0)), x, y))
            times[v].append((time.perf_counter() - start) * 50_000 / images)
            cpu[v].append((time.process_time() - start_cpu) * 50_000 / images)
    return {v: {"best_s": min(t), "median_s": float(np.median(t)), "runs_s": t, "cpu_s": cpu[v]}
            for v, t in times.items()}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="6b,6f", help="comma-separated networks (6b, 6f)")
    p.add_argument("--images", type=int, default=5000, help="images per timed epoch (scaled to "
                                                            "50,000)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per variant")
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated gradient/conv "
                                                                  "variants")
    p.add_argument("--out", default=None, help="write DIR/bench_conv.json here")
    args = p.parse_args(argv)
    variants = tuple(args.variants.split(","))
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"error: unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    result = {"images": args.images, "rounds": args.rounds, **result_files.environment(),
              "nets": {}}
    for net_id in [n for n in NETS if n in command_line.parse_only(args.nets, list(NETS))]:
        result["nets"][net_id] = time_epochs(net_id, args.images, args.rounds, variants)
        for v, t in result["nets"][net_id].items():
            print(f"{net_id} {v:16s} best {t['best_s']:6.2f} s  median {t['median_s']:6.2f} s per "
                  f"50k epoch (CPU median {np.median(t['cpu_s']):6.2f} s)", flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "bench_conv.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
