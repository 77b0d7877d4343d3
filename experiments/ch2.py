"""Chapter 2: why backpropagation: one gradient by finite differences versus by BP1–BP4.

    python -m experiments.ch2 [--quick] [--out DIR] [--data-dir DIR] [--compile-cache DIR]

The chapter's argument: estimating ∂C/∂w_j ≈ (C(w + ε e_j) − C(w)) / ε needs one extra
cost evaluation (a forward pass) per parameter, 23,860 of them for [784, 30, 10], while
backpropagation gets every partial derivative from one forward and one backward pass.
This script times both on the same mini-batch of 10 MNIST images, checks that the
finite-difference estimate agrees with backprop (in float64), and checks that the
hand-derived gradient equals jax.grad on real data. Writes DIR/ch2.json and DIR/ch2.md.
"""

import time

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from experiments import cli, command_line, interrupts, result_files
from nnjax import autodiff, backprop, data, init
from nnjax.network import Network, cost

SIZES = (784, 30, 10)


def finite_difference_gradient(params, x, y, net, eps: float, chunk: int = 512):
    """∂C/∂θ_j ≈ (C(θ + ε e_j) − C(θ)) / ε for every parameter j: one forward pass each.

    The perturbed costs are evaluated ``chunk`` parameters at a time (vmapped), which
    is the fastest honest way to run that many forward passes in JAX.
    """
    flat, unravel = ravel_pytree(params)
    c0 = cost(params, x, y, net)
    n = flat.size
    starts = jnp.arange(0, n, chunk)

    def block(start):
        j = start + jnp.arange(chunk)
        bumped = jax.vmap(lambda i: cost(unravel(flat.at[i].add(eps)), x, y, net))(j)
        return jnp.where(j < n, (bumped - c0) / eps, 0.0)

    return jax.lax.map(block, starts).ravel()[:n]


def timed(fn, *args, repeats: int):
    """(compile + first call seconds, best steady-state seconds, result)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return first, best, out


def main(argv=None) -> list[dict]:
    p = command_line.base_parser(__doc__.splitlines()[0])
    args = command_line.parse_args(p, argv)
    repeats = 1 if args.quick else 5
    mnist = data.load(args.dataset, args.data_dir)
    net = Network(SIZES)
    params = init.init_params(jax.random.key(0), SIZES, init.large)
    x, y = jnp.asarray(mnist.training.x[:10]), jnp.asarray(mnist.training.y[:10])

    bp = jax.jit(backprop.make_grad(net))
    fd = jax.jit(lambda p, x, y: finite_difference_gradient(p, x, y, net, eps=1e-3))
    bp_first, bp_s, g_bp = timed(bp, params, x, y, repeats=repeats * 20)
    fd_first, fd_s, _ = timed(fd, params, x, y, repeats=repeats)

    with jax.enable_x64(True):  # accuracy of the estimate, away from float32 rounding
        p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params)
        x64 = x.astype(jnp.float64)
        g_fd = finite_difference_gradient(p64, x64, y, net, eps=1e-6)
        g_exact = ravel_pytree(backprop.make_grad(net)(p64, x64, y))[0]
        g_auto = ravel_pytree(autodiff.make_grad(net)(p64, x64, y))[0]
        fd_err = float(jnp.max(jnp.abs(g_fd - g_exact)) / jnp.max(jnp.abs(g_exact)))
        auto_err = float(jnp.max(jnp.abs(g_auto - g_exact)) / jnp.max(jnp.abs(g_exact)))
    f32_err = float(jnp.max(jnp.abs(ravel_pytree(g_bp)[0] - ravel_pytree(autodiff.make_grad(net)(
        params, x, y))[0])))

    env = result_files.environment()
    n_params = int(ravel_pytree(params)[0].size)
    records = [
        {"id": "2-speed", "book": None, "metric": "finite differences ÷ backprop, seconds per "
                                                  "gradient",
         "best": fd_s / bp_s, "unit": "×", "note": f"{n_params + 1} forward passes vs 1 forward + "
                                                   "1 backward",
         "finite_difference_s": fd_s, "backprop_s": bp_s,
         "compile_s": {"fd": fd_first, "bp": bp_first},
         "config": {"sizes": SIZES, "batch": 10, "eps_timing": 1e-3, "repeats": repeats},
         "wall_s": fd_first + bp_first + repeats * fd_s, **env},
        {"id": "2-fd-error", "book": None, "metric": "max abs(FD − backprop) / max abs(backprop), "
                                                     "float64, ε = 1e-6",
         "best": fd_err, "unit": "", "note": "one-sided differences: error O(ε)",
         "config": {"eps": 1e-6}, "wall_s": 0.0, **env},
        {"id": "2-autodiff", "book": None, "metric": "max abs(jax.grad − backprop) / max "
                                                     "abs(backprop), float64",
         "best": auto_err, "unit": "", "note": f"float32 max abs difference {f32_err:.2e}",
         "config": {}, "wall_s": 0.0, **env},
    ]
    records = [r | interrupts.command_marks(args) for r in records]
    result_files.report_saved(args.out, "ch2", records)
    return records


if __name__ == "__main__":
    cli.run(main)
