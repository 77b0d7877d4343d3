"""Chapter 5: why deep networks are hard to train, measured.

    python -m experiments.ch5 [--quick] [--seeds N] [--out DIR] [--only 5a,5e] [--data-dir DIR]
                              [--merge] [--no-plots] [--set FIELD=VALUE] [--checkpoint-dir DIR
                              [--resume]] [--compile-cache DIR]

Writes DIR/ch5.json and DIR/ch5.md, then the figures (`experiments.ch5_plots`, which
reads the JSON). ``--merge`` keeps the records of ids not run from an existing ch5.json.
``--set`` and the checkpoint options apply to the training runs 5a–5d (RunConfig); the
speed measurements (SpeedConfig) take seconds to minutes and are not checkpointed.

- 5a–5d: network2.py on [784, 30 (, 30, …), 10]: default init, cross-entropy, mini-batch
  10, η 0.1, λ 5.0 (L2, per-step decay ηλ/n), 30 epochs on 50,000 images, validation
  accuracy; the book's figure is compared with the best run's peak.
- 5e: speed of learning ‖δ^l‖ of each hidden layer at initialisation, over the first
  1,000 training images, for 2, 3 and 4 hidden layers of 30, against the book's values.
- 5f: the same speeds through 500 epochs of full-batch gradient descent on those
  images (η 0.1, λ 5.0): how much slower the first hidden layer learns than the last
  (one record per depth, "5f 4 hidden" …).
- 5g: the chain network: vanishing and exploding products of w·σ′ factors, and the
  width of the interval where |w σ′(w a + b)| ≥ 1.
- 5h: beyond the book: 5e/5f with 4 hidden layers for tanh and ReLU networks and for
  zero-bias variance-scaled initialisations (Glorot for sigmoid/tanh, He for ReLU).
"""

import dataclasses
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from experiments import ch5_plots, cli, command_line, common, interrupts, result_files
from experiments.run_config import RunConfig, setting
from nnjax import activations, backprop, costs, data, init, optim
from nnjax.network import Network
from nnjax.unstable_gradient import (
    chain_bias_gradients,
    chain_factors,
    chain_forward,
    large_gradient_width,
    measured_width,
    speeds_during_training,
    zero_z_biases,
)

NETWORK2 = dict(epochs=30, batch_size=10, init="default", cost="cross_entropy", eta=0.1, lmbda=5.0,
                evaluate_on="validation")
RUNS = [
    RunConfig("5a", (784, 30, 10), book=96.48, note="validation, peak epoch", **NETWORK2),
    RunConfig("5b", (784, 30, 30, 10), book=96.90, note="validation, peak epoch", **NETWORK2),
    RunConfig("5c", (784, 30, 30, 30, 10), book=96.57, note="validation, peak epoch", **NETWORK2),
    RunConfig("5d", (784, 30, 30, 30, 30, 10), book=96.53, note="validation, peak epoch",
              **NETWORK2),
]

# The book's speeds at initialisation, first hidden layer first (ch5, "the vanishing gradient
# problem").
BOOK_INIT_SPEEDS = {2: (0.07, 0.31), 3: (0.012, 0.060, 0.283), 4: (0.003, 0.017, 0.070, 0.285)}


@dataclass(frozen=True)
class SpeedConfig:
    images: int = setting(1000, help="the first N training images, used both to train and to "
                                     "measure")
    epochs: int = setting(500, help="full-batch gradient-descent epochs (one update each)")
    eta: float = setting(0.1, help="learning rate η")
    lmbda: float = setting(5.0, help="L2 parameter λ (decay ηλ/n per update, n = images)")
    width: int = setting(30, help="neurons per hidden layer")
    depths: tuple[int, ...] = setting((2, 3, 4), help="hidden layers")
    variants: tuple[tuple[str, str], ...] = setting(
        (("sigmoid", "glorot"), ("tanh", "default"), ("tanh", "glorot"), ("relu",
            "default"), ("relu", "he")),
        help="(hidden activation, initialiser) for 5h; sigmoid/default is 5f")
    chains: int = setting(10_000, help="random chain networks averaged in 5g")
    chain_length: int = setting(5, help="neurons in each chain")


QUICK_SPEED = SpeedConfig(images=200, epochs=10, depths=(2, 4), variants=(("relu", "he"),),
                          chains=100)

IDS = ["5a", "5b", "5c", "5d", "5e", "5f", "5g", "5h"]


def quick(cfg: RunConfig) -> RunConfig:
    """The smoke version: one epoch on the first 2,000 images, evaluated on 1,000."""
    return dataclasses.replace(cfg, epochs=1, train_size=2000, eval_size=1000)


def sig(a, digits: int = 4) -> list:
    """Values rounded to ``digits`` significant figures (speeds span many decades)."""
    return [float(f"{v:.{digits}g}") for v in np.asarray(a, dtype=float).ravel()]


def speed_run(activation: str, init_name: str, depth: int, seed: int, cfg: SpeedConfig, x,
              y) -> dict:
    """Speeds of one network through cfg.epochs of full-batch descent; the init key is
    run_seeds'."""
    net = Network((784,) + (cfg.width,) * depth + (10,), activations.get(activation),
                  activations.SIGMOID, costs.CROSS_ENTROPY)
    k_init, _ = jax.random.split(jax.random.key(seed))
    params = init.init_params(k_init, net.sizes, init_name)
    run = speeds_during_training(backprop.make_grad(net),
                                 optim.sgd(cfg.eta, lmbda=cfg.lmbda, n=cfg.images), cfg.epochs)
    start = time.perf_counter()
    _, speeds = run(params, x, y)
    speeds = np.asarray(speeds)
    return {"seed": seed, "activation": activation, "init": init_name, "depth": depth,
            "speeds": [sig(row) for row in speeds],
            "ratio_init": float(speeds[0, -1] / speeds[0, 0]),
            "ratio_final": float(speeds[-1, -1] / speeds[-1, 0]),
            "wall_s": time.perf_counter() - start}


def speed_record(id_: str, metric: str, runs: list[dict], note: str, cfg: SpeedConfig,
                 wall_s: float, key: str = "ratio_final") -> dict:
    values = [r[key] for r in runs]
    return {"id": id_, "book": None, "note": note, "metric": metric, "unit": "×",
            "best": float(min(values)), "mean": float(np.mean(values)),
            "std": float(np.std(values)), "seeds": [r["seed"] for r in runs], "per_seed": runs,
            "config": dataclasses.asdict(cfg), "wall_s": wall_s, **result_files.environment()}


def init_record(by_depth: dict[int, list[dict]], cfg: SpeedConfig, seeds, wall_s: float) -> dict:
    """5e: the speeds before the first update, seed-mean against the book's, per depth."""
    table, worst = {}, 1.0
    for d, runs in by_depth.items():
        first = np.array([r["speeds"][0] for r in runs])
        mean = first.mean(axis=0)
        book = np.array(BOOK_INIT_SPEEDS.get(d, [np.nan] * d))
        factor = np.maximum(mean / book, book / mean)
        worst = max(worst, float(np.nanmax(factor)))
        table[str(d)] = {"book": book.tolist(), "mean": sig(mean), "std": sig(first.std(axis=0)),
                         "factor": sig(factor, 3), "per_seed": first.tolist()}
    return {"id": "5e", "book": 2.0, "note": "must be within a factor of 2 of the book's values",
            "metric": "largest factor between our seed-mean and the book's speed at init, any layer"
            , "unit": "×", "best": worst, "mean": None, "std": None, "seeds": list(seeds),
            "speeds_at_init": table, "config": dataclasses.asdict(cfg), "wall_s": wall_s,
            **result_files.environment()}


def run_speeds(cfg: SpeedConfig, x, y, seeds, ids, verbose) -> list[dict]:
    """5e and 5f share the book's runs (sigmoid, default init), one "5f D hidden" record per
    depth D; 5h adds the variants at the largest depth (its sigmoid/default is 5f's)."""
    metric = f"last/first hidden-layer speed after {cfg.epochs} epochs (best = smallest seed)"

    def ratio_note(runs):
        return f"at init {np.mean([r['ratio_init'] for r in runs]):.3g}×"

    records = []
    if ids & {"5e", "5f"}:
        by_depth, wall = {}, 0.0
        for d in cfg.depths:
            start = time.perf_counter()
            by_depth[d] = [speed_run("sigmoid", "default", d, s, cfg, x, y) for s in seeds]
            wall += time.perf_counter() - start
            rec = speed_record(f"5f {d} hidden", metric, by_depth[d], ratio_note(by_depth[d]) +
                               ("; book: roughly 100×" if d == 4 else ""), cfg,
                               time.perf_counter() - start)
            if "5f" in ids:
                records.append(rec)
            if verbose:
                print(f"[5f {d} hidden] {rec['mean']:.3g}× ({rec['wall_s']:.1f} s)", flush=True)
        if "5e" in ids:
            records.insert(0, init_record(by_depth, cfg, seeds, wall))
    if "5h" in ids:
        depth = max(cfg.depths)
        for act, init_name in cfg.variants:
            start = time.perf_counter()
            runs = [speed_run(act, init_name, depth, s, cfg, x, y) for s in seeds]
            rec = speed_record(f"5h {act}/{init_name}", f"{metric}, {depth} hidden", runs,
                               ratio_note(runs), cfg, time.perf_counter() - start)
            records.append(rec)
            if verbose:
                print(f"[{rec['id']}] {rec['mean']:.3g}× ({rec['wall_s']:.1f} s)", flush=True)
    return records


def run_chain(cfg: SpeedConfig, seeds) -> dict:
    """5g: bias gradients along chains with w, b ~ N(0, 1), the exploding chain, the interval
    width."""
    start = time.perf_counter()
    L = cfg.chain_length
    key = jax.random.key(seeds[0])
    kw, kb, kx = jax.random.split(key, 3)
    w = jax.random.normal(kw, (cfg.chains, L))
    b = jax.random.normal(kb, (cfg.chains, L))
    x = jax.random.uniform(kx, (cfg.chains,))
    grads = jax.vmap(lambda w, b, x: chain_bias_gradients(w, b, x, 1.0))(w, b, x)
    factors = jax.vmap(chain_factors)(w, b, x)
    big = jnp.full(L, 100.0)
    big_b = zero_z_biases(big, 0.5)
    exploding = chain_bias_gradients(big, big_b, 0.5, 1.0)
    ws = jnp.linspace(0.0, 30.0, 3001)
    widths = large_gradient_width(ws)
    i = int(jnp.argmax(widths))
    # refine the maximum on a fine grid around the coarse one, then check it by brute force
    fine = jnp.linspace(ws[i] - 0.02, ws[i] + 0.02, 4001)
    j = int(jnp.argmax(large_gradient_width(fine)))
    w_star, width_star = float(fine[j]), float(large_gradient_width(fine[j]))
    return {"id": "5g", "book": 0.45, "note": f"at |w| = {w_star:.3f}; book: ≈ 0.45 near |w| ≈ 6.9",
            "metric": "widest interval of a with |w σ′(w a + b)| ≥ 1", "unit": "",
            "best": width_star, "mean": None, "std": None, "seeds": [seeds[0]], "w_star": w_star,
            "brute_force_width": float(measured_width(w_star)),
            "random_chains": {"n": cfg.chains, "mean_abs_grad": sig(jnp.mean(jnp.abs(grads),
                                                                             axis=0)),
                              "median_abs_grad": sig(jnp.median(jnp.abs(grads), axis=0)),
                              "share_factors_below_1": float(jnp.mean(jnp.abs(factors) < 1.0)),
                              "share_factors_below_quarter": float(jnp.mean(jnp.abs(
                                  factors) < 0.25))},
            "exploding": {"w": 100.0, "z": sig(chain_forward(big, big_b, 0.5)[0]),
                          "grad": sig(exploding), "factors": sig(chain_factors(big, big_b, 0.5))},
            "width_curve": {"w": sig(ws[::10]), "width": sig(widths[::10])},
            "config": dataclasses.asdict(cfg), "wall_s": time.perf_counter() - start,
            **result_files.environment()}


def speeds_table(records: list[dict]) -> str:
    """Markdown: the book's speeds at init beside ours, and the speed ratios of every run."""
    lines = []
    for r in records:
        if r["id"] == "5e":
            lines += ["Speed of learning ‖δ^l‖ at initialisation (first hidden layer first), mean "
                      "± std over seeds:", "", "| hidden layers | book | ours | factor |",
                      "|---|---|---|---|"]
            for d, t in r["speeds_at_init"].items():
                ours = ", ".join(f"{m:.3g} ± {s:.2g}" for m, s in zip(t["mean"], t["std"]))
                lines.append(f"| {d} | {', '.join(f'{v:g}' for v in t['book'])} | {ours} | "
                             f"{', '.join(f'{v:.2f}' for v in t['factor'])} |")
            lines.append("")
    depths = [r for r in records if r["id"].startswith("5f ")]
    if depths:
        lines += ["Last/first hidden-layer speed ratio, mean over seeds:", "",
                  "| network | at init | after training |", "|---|---|---|"]
        for r in depths + [r for r in records if r["id"].startswith("5h ")]:
            lines.append(f"| {r['id']} | {np.mean([x['ratio_init'] for x in r['per_seed']]):.3g}× "
                         f"| {r['mean']:.3g}× |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    p = command_line.add_run_options(command_line.base_parser(__doc__.splitlines()[0], IDS))
    p.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    args = command_line.parse_args(p, argv)
    ids = command_line.parse_only(args.only, IDS)
    configs = command_line.prepare(p, args, [c for c in RUNS if c.id in ids], quick)
    seeds = list(range(1 if args.quick else args.seeds))
    speed_cfg = QUICK_SPEED if args.quick else SpeedConfig()
    needs_data = ids & {"5a", "5b", "5c", "5d", "5e", "5f", "5h"}
    mnist = data.load(args.dataset, args.data_dir) if needs_data else None
    with interrupts.saving_on_interrupt(args, "ch5", IDS) as records:
        for cfg in configs:
            per_seed = common.run_seeds(cfg, mnist, seeds, verbose=not args.quiet,
                                        **command_line.fit_options(args))
            records.append(result_files.make_record(cfg, per_seed, metric="peak",
                                              final_mean=result_files.mean_of([r["final"]
                                                                               for r in per_seed])))
        if ids & {"5e", "5f", "5h"}:
            tr = mnist.training
            x, y = jnp.asarray(tr.x[:speed_cfg.images]), jnp.asarray(tr.y[:speed_cfg.images])
            records += run_speeds(speed_cfg, x, y, seeds, ids, not args.quiet)
        if "5g" in ids:
            records.append(run_chain(speed_cfg, seeds))
    if args.merge:
        records = result_files.merge_saved(args.out, "ch5", records, IDS)
    path = result_files.report_saved(args.out, "ch5", records, speeds_table(records))
    if not args.no_plots:
        for png in ch5_plots.plot_all(path):
            print(f"wrote {png}")
    return records


if __name__ == "__main__":
    cli.run(main)
