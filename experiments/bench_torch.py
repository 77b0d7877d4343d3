"""One epoch of the book's 6b and 6f networks: nnjax's compiled epoch against PyTorch eager (ch6).

    python -m experiments.bench_torch [--nets 6b,6f] [--images 5000] [--rounds 3] [--out DIR]

Both sides train the same network on the same images, mini-batch 10, in network3's
fixed order: 5×5 valid convs with 2×2 max-pooling, FC100, softmax with the
log-likelihood cost; 6b sigmoid with η = 0.1, 6f ReLU with η = 0.03 and network3's L2
(λ = 0.1: weights only, each step decays them by ηλm/n). PyTorch runs its ordinary eager
loop (``loss.backward(); opt.step()`` per mini-batch, ``torch.optim.SGD`` with weight
decay λm/n on the weights); nnjax runs one jitted `lax.scan` epoch
(`experiments.bench_conv.epoch_fn`). The two alternate in one process, ``--rounds``
times, so load from other processes hits both alike; wall and CPU (process) times are
scaled to 50,000 images. The speed-up is taken against the fastest PyTorch thread count.
Needs PyTorch (``pip install 'nnjax[bench]'``, the CPU wheel).
"""

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
import torch

from experiments import common
from experiments.bench_conv import NETS, epoch_fn
from nnjax import convnet

SETTINGS = {"6b": dict(eta=0.1, lmbda=0.0), "6f": dict(eta=0.03, lmbda=0.1)}


def torch_net(convs, fc, activation: str) -> torch.nn.Sequential:
    """The network3 net in PyTorch (NCHW): [conv 5×5 → max-pool 2 → σ]*, FC → σ, softmax layer (logits)."""
    act = {"sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
    mods, c, side = [], 1, 28
    for f in convs:
        mods += [torch.nn.Conv2d(c, f, 5), torch.nn.MaxPool2d(2), act()]
        c, side = f, (side - 4) // 2
    mods.append(torch.nn.Flatten())
    n = c * side * side
    for h in fc:
        mods += [torch.nn.Linear(n, h), act()]
        n = h
    mods.append(torch.nn.Linear(n, 10))
    return torch.nn.Sequential(*mods)


def torch_epoch(net_id: str, x: np.ndarray, y: np.ndarray, batch_size: int = 10):
    """A function running one PyTorch eager epoch over (x, y) in fixed order."""
    torch.manual_seed(0)
    model = torch_net(**NETS[net_id])
    s = SETTINGS[net_id]
    weights = [p for name, p in model.named_parameters() if name.endswith("weight")]
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    opt = torch.optim.SGD([{"params": weights, "weight_decay": s["lmbda"] * batch_size / len(x)},
                           {"params": biases, "weight_decay": 0.0}], lr=s["eta"])
    xt = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))
    yt = torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()  # mean of −ln softmax(z)_y: the log-likelihood cost

    def epoch():
        for i in range(0, len(x) - batch_size + 1, batch_size):
            opt.zero_grad(set_to_none=True)
            loss_fn(model(xt[i:i + batch_size]), yt[i:i + batch_size]).backward()
            opt.step()

    return epoch


def compare(net_id: str, images: int, rounds: int, torch_threads=(1,)) -> dict:
    """Seconds per 50,000-image epoch, PyTorch eager (per thread count) and nnjax, alternating ``rounds`` times."""
    rng = np.random.default_rng(0)
    x = rng.random((images, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, images).astype(np.int32)
    run_torch = torch_epoch(net_id, x, y)
    fn, state = epoch_fn(convnet.network3_arch(**NETS[net_id]), "autodiff/auto", images, **SETTINGS[net_id])
    xj, yj = jax.numpy.asarray(x), jax.numpy.asarray(y)

    def run_jax():
        jax.block_until_ready(fn(*state, jax.random.key(0), xj, yj))

    def with_threads(n):
        def run():
            torch.set_num_threads(n)
            run_torch()
        return run

    runs = {f"torch_eager_{n}_threads": with_threads(n) for n in torch_threads}
    runs["nnjax"] = run_jax
    run_jax()  # compile
    times = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append((time.perf_counter() - start) * 50_000 / images)
            cpu[name].append((time.process_time() - start_cpu) * 50_000 / images)
    out = {k: {"best_s": min(v), "median_s": float(np.median(v)), "runs_s": v, "cpu_s": cpu[k]}
           for k, v in times.items()}
    fastest = min((k for k in out if k.startswith("torch")), key=lambda k: out[k]["median_s"])
    out["torch_baseline"] = fastest
    out["speedup_best"] = out[fastest]["best_s"] / out["nnjax"]["best_s"]
    out["speedup_median"] = out[fastest]["median_s"] / out["nnjax"]["median_s"]
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="6b,6f", help="comma-separated networks (6b, 6f)")
    p.add_argument("--images", type=int, default=5000, help="images per timed epoch (scaled to 50,000)")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    p.add_argument("--torch-threads", default="1", help="comma-separated PyTorch thread counts to time "
                   "(default 1: with other processes on the cores, 2 threads ran 20× slower here)")
    p.add_argument("--out", default=None, help="write DIR/bench_torch.json here")
    args = p.parse_args(argv)
    threads = tuple(int(t) for t in args.torch_threads.split(","))
    result = {"images": args.images, "rounds": args.rounds, "batch_size": 10, "torch_version": torch.__version__,
              **common.environment(), "nets": {}}
    for net_id in [n for n in NETS if n in common.parse_only(args.nets, list(NETS))]:
        r = result["nets"][net_id] = compare(net_id, args.images, args.rounds, threads)
        t = r[r["torch_baseline"]]
        print(f"{net_id}: PyTorch eager ({r['torch_baseline']}) {t['best_s']:.2f} s (median {t['median_s']:.2f}), "
              f"nnjax {r['nnjax']['best_s']:.2f} s (median {r['nnjax']['median_s']:.2f}) per 50k epoch: "
              f"{r['speedup_best']:.1f}× (medians {r['speedup_median']:.1f}×); CPU s {np.median(t['cpu_s']):.2f} vs "
              f"{np.median(r['nnjax']['cpu_s']):.2f}", flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "bench_torch.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
