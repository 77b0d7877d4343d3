"""Chapter 4: the universality constructions, built and measured.

    python -m experiments.ch4 [--quick] [--seeds N] [--out DIR] [--only 4a,4b] [--merge]
    [--no-plots]
                              [--set FIELD=VALUE] [--compile-cache DIR]

Writes DIR/ch4.json and DIR/ch4.md, then the figures (`experiments.ch4_plots`, which
reads the JSON). ``--merge`` keeps the records of ids not run from an existing ch4.json.
``--set field=value`` changes a Ch4Config field (of the --quick config with --quick).
Target f(x) = 0.2 + 0.4x² + 0.3x·sin(15x) + 0.05·cos(50x) on [0, 1]; errors are
max and mean |g − f| over 10,001 equally spaced points.

- 4a: the book's five bumps on [0, 0.2), …, [0.8, 1.0) and its score (goal ≤ 0.40);
- 4b: sigmoid bumps, error against hidden neurons, fewest for max |g − f| ≤ 0.01;
- 4c: the same with tanh and the wiggly s(z) = σ(z) + 0.2·sin(10z)·e^{−|z|};
- 4d: ReLU: bumps from ReLU steps, and the piecewise-linear ReLU interpolant;
- 4e: the overlap repair, M shifted copies of f/M, in 1-D and on the 2-D tower grid;
- 4f: towers and grids of towers for f2(x, y);
- 4g: one-hidden-layer sigmoid networks trained by SGD on f (one run per seed).
"""

import dataclasses
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from experiments import ch4_plots, cli, command_line, interrupts, result_files
from experiments.run_config import setting
from nnjax import (
    activations,
    approximation,
    backprop,
    costs,
    init,
    optim,
    train,
    universality,
    validate,
)
from nnjax.approximation import abs_errors, approximate_1d, relu_interpolant, tower_grid
from nnjax.network import Network
from nnjax.universality import Construction, hidden_neurons


def f(x):
    """The chapter's target (NumPy ufuncs: constructions are built in NumPy)."""
    return 0.2 + 0.4 * x**2 + 0.3 * x * np.sin(15 * x) + 0.05 * np.cos(50 * x)


def f2(x, y):
    """A smooth target on the unit square for the two-input constructions (ours; the book's is
    unnamed)."""
    return 0.5 + 0.25 * np.sin(2 * np.pi * x) * np.cos(3 * y) + 0.1 * x


@dataclass(frozen=True)
class Ch4Config:
    w: float = setting(1000.0, help="step steepness, the book's ≈ 1000")
    pad_steps: float = setting(10.0,
        help="outermost edges moved out by pad_steps / w, so the end steps are whole on [0, 1]")
    relu_w: float = setting(100.0, help="ReLU steps: ramps of width 1/relu_w (see series())")
    goal: float = setting(0.01, help="max |g − f| a construction must reach")
    points: int = setting(10_001, help="evaluation points on [0, 1]")
    sweep: tuple[int, ...] = setting((1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300,
                                      500),
        help="bumps / knots")
    refine: bool = setting(True, help="scan every size below the first passing one in the sweep, "
                                      "for the exact fewest")
    plot_bumps: tuple[int, ...] = setting((5, 10, 20, 50),
                                          help="approximations drawn in the figure")
    overlap_bins: int = setting(20, help="1-D bins per copy in the overlap study")
    towers_n: tuple[int, ...] = setting((5, 10, 20), help="towers per axis")
    tower_w: float = setting(100.0, help="the thresholding neuron's h (bias −3h/2)")
    copies: tuple[int, ...] = setting((1, 2, 4, 8), help="M of the overlap repair")
    grid_2d: int = setting(201, help="evaluation points per axis in 2-D (includes the tower "
                                     "corners)")
    plot_2d: int = setting(61, help="points per axis of the stored 2-D surfaces")
    sgd_hidden: tuple[int, ...] = setting((10, 30, 100), help="hidden neurons of the trained "
                                                              "networks")
    sgd_eta: float = setting(3.0, help="learning rate η")
    sgd_epochs: int = setting(5000, help="epochs over the training points")
    sgd_points: int = setting(1000, help="training points, equally spaced on [0, 1]")
    sgd_batch: int = setting(10, help="mini-batch size")
    sgd_every: int = setting(100, help="epochs between recorded errors")

    def __post_init__(self):
        """Check every field, so that a bad --set fails before any work."""
        for name in ("w", "relu_w", "goal", "tower_w", "sgd_eta"):
            validate.positive(name, getattr(self, name))
        validate.non_negative("pad_steps", self.pad_steps)
        for name in ("points", "overlap_bins", "grid_2d", "plot_2d", "sgd_epochs", "sgd_points",
                     "sgd_batch", "sgd_every"):
            validate.integer(name, getattr(self, name), 1)
        for name in ("sweep", "plot_bumps", "towers_n", "copies", "sgd_hidden"):
            if not getattr(self, name):
                raise ValueError(f"Ch4Config: {name} must hold at least one size, got ()")
            for v in getattr(self, name):
                validate.integer(name, v, 1)
        if not isinstance(self.refine, bool):
            raise TypeError(f"Ch4Config: refine must be True or False, got {self.refine!r}")
        validate.integer("sgd_batch", self.sgd_batch, 1, self.sgd_points)


QUICK = Ch4Config(sweep=(5, 50, 200), refine=False, plot_bumps=(5, 20), towers_n=(5,),
                  copies=(1, 2), grid_2d=51, plot_2d=21, sgd_hidden=(10,), sgd_epochs=20,
                  sgd_every=10, points=2001)

IDS = ["4a", "4b", "4c", "4d", "4e", "4f", "4g"]


def rounded(a, digits: int = 5) -> list:
    return np.round(np.asarray(a, dtype=float), digits).tolist()


def record(id_: str, metric: str, value, unit: str, note: str, cfg: Ch4Config, start: float,
           book=None, **extra) -> dict:
    return {"id": id_, "book": book, "note": note, "metric": metric, "unit": unit, "best": value,
            "mean": None, "std": None, "seeds": [], "config": dataclasses.asdict(cfg),
            "wall_s": time.perf_counter() - start, **result_files.environment(), **extra}


def sweep(build, cfg: Ch4Config, x) -> dict:
    """Errors over cfg.sweep and the fewest neurons with max ≤ goal: the first passing size,
    or with cfg.refine the first passing one in a scan of every size since the last failing one."""
    rows = []

    def measure(n):
        c = build(n)
        rows.append({"n": n, "neurons": hidden_neurons(c), **abs_errors(c, f, x)})
        return rows[-1]["max"] <= cfg.goal

    previous = 0
    for n in cfg.sweep:
        if measure(n):
            first = next((m for m in range(previous + 1, n) if measure(m)), n) if cfg.refine else n
            fewest = next(r["neurons"] for r in rows if r["n"] == first)
            break
        previous = n
    else:
        first = fewest = None
    rows.sort(key=lambda r: r["n"])
    return {"n": [r["n"] for r in rows], "neurons": [r["neurons"] for r in rows],
            "max": [r["max"] for r in rows], "mean": [r["mean"] for r in rows], "fewest_n": first,
            "fewest_neurons": fewest}


def series(cfg: Ch4Config) -> dict:
    """How each construction is built from its size n."""
    pad = cfg.pad_steps / cfg.w
    return {
        "sigmoid": lambda n: approximate_1d(f, n, w=cfg.w, pad=pad),
        "sigmoid, sharp (w = 100·n)": lambda n: approximate_1d(f, n, w=100.0 * n,
                                                               pad=cfg.pad_steps / (100.0 * n)),
        "tanh": lambda n: approximate_1d(f, n, w=cfg.w, pad=pad, hidden=activations.TANH),
        "wiggly": lambda n: approximate_1d(f, n, w=cfg.w, pad=pad, hidden=universality.WIGGLY),
        # A ReLU grows like w·x, and g sums ± pairs of such values: in float32 that sum loses
        # ≈ 1e-7·w·n·|h|, so with w = 1000 the error stops falling near 0.02 (the series below).
        "relu steps": lambda n: approximate_1d(f, n, w=cfg.relu_w, pad=cfg.pad_steps / cfg.relu_w,
                                               hidden=activations.RELU),
        "relu steps, w = 1000 (float32 cancellation)": lambda n: approximate_1d(f, n, w=cfg.w,
                                                                                pad=pad,
                                                                               hidden=activations.RELU),
        "relu interpolant": lambda n: relu_interpolant(f, n),
    }


def run_4a(cfg, x, start) -> dict:
    book_x = jnp.arange(100, dtype=jnp.float32) / 100
    fine = jnp.linspace(0, 1, 401)
    out = {}
    for rule in ("median", "midpoint"):
        c = approximate_1d(f, 5, w=cfg.w, rule=rule, samples=book_x)
        out[rule] = {"score": approximation.book_score(c, f),
                     "heights": rounded(c.params[1]["w"][0, ::2]),
                     "weighted_output": rounded(universality.weighted_output(c, fine[:, None])),
                     **abs_errors(c, f, x)}
    phi = approximation.target_space(f, activations.SIGMOID)
    return record("4a", "book score (5 bumps, median heights)", out["median"]["score"], "",
                  f"goal ≤ 0.40; midpoint heights score {out['midpoint']['score']:.3f}", cfg, start,
                  book=0.40, curves={"x": rounded(fine), "phi": rounded(phi(fine)), **out})


def run_sweeps(id_, names, note, cfg, x, start) -> dict:
    built = series(cfg)
    result = {name: sweep(built[name], cfg, x) for name in names}
    extra = {}
    if id_ == "4b":
        fine = jnp.linspace(0, 1, 401)
        extra["curves"] = {"x": rounded(fine), "f": rounded(f(fine)),
                           **{str(n): rounded(universality.apply(built["sigmoid"](n),
                                                                 fine[:, None]))
                              for n in cfg.plot_bumps}}
        extra["steps"] = {str(w): rounded(universality.apply(universality.step(0.4, w=w),
                                                             fine[:, None]))
                          for w in (10.0, 50.0, 200.0, 1000.0)}
    if id_ in ("4c", "4d"):
        fine = jnp.linspace(0, 1, 401)
        extra["bumps"] = {name: rounded(universality.weighted_output(
            universality.bumps(0.3, 0.7, 0.8, w=30.0, hidden=act, output=activations.LINEAR),
            fine[:, None])) for name, act in (("sigmoid", activations.SIGMOID), ("tanh",
                                                                                 activations.TANH),
                              ("wiggly", universality.WIGGLY), ("relu", activations.RELU))}
        extra["bumps"]["x"] = rounded(fine)
    main = result[names[0]]
    return record(id_, f"fewest hidden neurons for max |g − f| ≤ {cfg.goal} ({names[0]})",
                  main["fewest_neurons"], "neurons", note, cfg, start, series=result, **extra)


def grid_points(n: int):
    g = jnp.linspace(0, 1, n)
    return jnp.stack(jnp.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def measured(c: Construction, target, x, **label) -> dict:
    """A table row: the label, max and mean |g − target| over x, and the hidden neurons used."""
    return {**label, **abs_errors(c, target, x), "neurons": hidden_neurons(c)}


def run_4e(cfg, x, start) -> dict:
    pad = cfg.pad_steps / cfg.w
    n2 = cfg.towers_n[min(1, len(cfg.towers_n) - 1)]
    pts = grid_points(cfg.grid_2d)
    one_d = [measured(approximate_1d(f, cfg.overlap_bins, w=cfg.w, pad=pad, copies=m), f, x,
                      copies=m)
             for m in cfg.copies]
    finer = [measured(approximate_1d(f, cfg.overlap_bins * m, w=cfg.w, pad=pad), f, x,
                      n=cfg.overlap_bins * m)
             for m in cfg.copies]
    two_d = [measured(tower_grid(f2, n2, w=cfg.w, tower_w=cfg.tower_w, pad=pad, copies=m), f2, pts,
                      copies=m, n=n2)
             for m in cfg.copies]
    return record("4e", f"max |g − f2| with {cfg.copies[-1]} shifted copies of the {n2}×{n2} tower "
                        "grid",
                  two_d[-1]["max"], "", f"one copy: {two_d[0]['max']:.3f}", cfg, start, one_d=one_d,
                  one_d_finer=finer, two_d=two_d)


def run_4f(cfg, start) -> dict:
    pad = cfg.pad_steps / cfg.w
    pts = grid_points(cfg.grid_2d)
    grids = [measured(tower_grid(f2, n, w=cfg.w, tower_w=cfg.tower_w, pad=pad), f2, pts, n=n)
             for n in cfg.towers_n]
    plot = grid_points(cfg.plot_2d)
    tower = universality.towers([0.3, 0.6], [0.4, 0.7], [[1.0]], w=cfg.w, tower_w=cfg.tower_w,
                                output=activations.LINEAR)
    n2 = cfg.towers_n[min(1, len(cfg.towers_n) - 1)]
    surfaces = {"tower": universality.apply(tower, plot), "f2": f2(*plot.T),
                "grid": universality.apply(tower_grid(f2, n2, w=cfg.w, tower_w=cfg.tower_w,
                                                      pad=pad), plot),
                "grid_copies": universality.apply(tower_grid(f2, n2, w=cfg.w, tower_w=cfg.tower_w,
                                                             pad=pad, copies=cfg.copies[-1]), plot)}
    surfaces = {k: rounded(np.asarray(v).reshape(cfg.plot_2d, cfg.plot_2d), 4) for k,
                v in surfaces.items()}
    return record("4f", f"max |g − f2|, {grids[-1]['n']}×{grids[-1]['n']} towers", grids[-1]["max"],
                  "", "the max sits at the corners where four towers meet", cfg, start, grids=grids,
                  surfaces={**surfaces, "n": n2, "copies": cfg.copies[-1]})


def train_on_f(hidden: int, seed: int, cfg: Ch4Config, x_eval) -> dict:
    """A [1, hidden, 1] sigmoid network trained by mini-batch SGD on the quadratic cost (ch1's
    recipe)."""
    net = Network((1, hidden, 1), activations.SIGMOID, activations.SIGMOID, costs.QUADRATIC)
    k_init, k_train = jax.random.split(jax.random.key(seed))
    params = init.init_params(k_init, net.sizes, "large")
    xs = jnp.linspace(0, 1, cfg.sgd_points, dtype=jnp.float32)[:, None]
    ys = f(xs)
    optimizer = optim.sgd(cfg.sgd_eta)
    state = train.State(params, optimizer.init(params), k_train)
    epoch = train.make_epoch(backprop.make_grad(net), optimizer, cfg.sgd_batch)
    history = {"epoch": [], "max": [], "mean": []}
    start = time.perf_counter()
    for e in range(cfg.sgd_epochs):
        state = epoch(state, xs, ys)  # epoch e's key: fold_in(k_train, e)
        params = state.params
        if (e + 1) % cfg.sgd_every == 0 or e + 1 == cfg.sgd_epochs:
            err = abs_errors(Construction(net, params), f, x_eval)
            history["epoch"].append(e + 1)
            history["max"].append(err["max"])
            history["mean"].append(err["mean"])
    return {"seed": seed, "hidden": hidden, "max": history["max"][-1], "mean": history["mean"][-1],
            "history": history, "wall_s": time.perf_counter() - start}


def run_4g(cfg, x, seeds, verbose, start) -> dict:
    per_seed = []
    for h in cfg.sgd_hidden:
        for s in seeds:
            r = train_on_f(h, s, cfg, x)
            per_seed.append(r)
            if verbose:
                print(f"[4g] hidden {h} seed {s}: max {r['max']:.4f} mean {r['mean']:.4f} "
                      f"({r['wall_s']:.1f} s)", flush=True)
    built = series(cfg)["sigmoid"]
    constructed = [{"hidden": h, **abs_errors(built(h // 2), f, x)} for h in cfg.sgd_hidden]
    largest = [r["mean"] for r in per_seed if r["hidden"] == cfg.sgd_hidden[-1]]
    rec = record("4g", f"mean |g − f| after SGD, {cfg.sgd_hidden[-1]} hidden", min(largest), "",
                 f"construction with {cfg.sgd_hidden[-1]} hidden: mean "
                 f"{constructed[-1]['mean']:.4f}", cfg, start, per_seed=per_seed,
                 constructed=constructed)
    rec.update(mean=float(np.mean(largest)), std=float(np.std(largest)), seeds=list(seeds))
    return rec


def run_one(id_: str, cfg: Ch4Config, x, seeds, verbose: bool) -> dict:
    """The record of one id."""
    start = time.perf_counter()
    if id_ == "4a":
        r = run_4a(cfg, x, start)
    elif id_ == "4b":
        r = run_sweeps("4b", ["sigmoid", "sigmoid, sharp (w = 100·n)"], f"bumps, w = {cfg.w}", cfg,
                       x, start)
    elif id_ == "4c":
        r = run_sweeps("4c", ["wiggly", "tanh"], "other activations with distinct limits", cfg, x,
                       start)
    elif id_ == "4d":
        r = run_sweeps("4d", ["relu steps", "relu interpolant", "relu steps, w = 1000 (float32 "
                                                                "cancellation)"],
                       f"each ReLU step is two ReLUs, ramp width 1/{cfg.relu_w:g}", cfg, x, start)
    elif id_ == "4e":
        r = run_4e(cfg, x, start)
    elif id_ == "4f":
        r = run_4f(cfg, start)
    else:
        r = run_4g(cfg, x, seeds, verbose, start)
    if verbose:
        print(f"[{r['id']}] {r['metric']}: {r['best']} {r['unit']} ({r['wall_s']:.1f} s)",
              flush=True)
    return r


def main(argv=None) -> list[dict]:
    p = command_line.add_run_options(command_line.base_parser(__doc__.splitlines()[0], IDS),
                                     Ch4Config, checkpoints=False)
    p.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    args = command_line.parse_args(p, argv)
    ids = command_line.parse_only(args.only, IDS)
    cfg, = command_line.check_args(p, args, [QUICK if args.quick else Ch4Config()])
    seeds = list(range(1 if args.quick else args.seeds))
    x = jnp.linspace(0, 1, cfg.points)
    with interrupts.saving_on_interrupt(args, "ch4", IDS) as records:
        for id_ in IDS:
            if id_ in ids:
                records.append(run_one(id_, cfg, x, seeds, not args.quiet))
    if args.merge:
        records = result_files.merge_saved(args.out, "ch4", records, IDS)
    path = result_files.report_saved(args.out, "ch4", records)
    if not args.no_plots:
        for png in ch4_plots.plot_all(path):
            print(f"wrote {png}")
    return records


if __name__ == "__main__":
    cli.run(main)
