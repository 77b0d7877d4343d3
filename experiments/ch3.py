"""Chapter 3: network2.py's cross-entropy, L2/L1, initialisation, η and λ choices on MNIST.

    python -m experiments.ch3 [--quick] [--seeds N] [--out DIR] [--only 3a,3k,X-momentum] [--merge]
                              [--set FIELD=VALUE] [--checkpoint-dir DIR [--resume]] [--compile-cache
                              DIR]

Runs 3a–3r (docs/book.md), our own runs of what the book leaves unreported (X-*: L1,
momentum, early stopping, the η schedule, tanh and ReLU hidden layers) and the sweep
timing (S-sweep: 8 η as one vmapped program against 8 runs one by one). Writes
DIR/ch3.json and DIR/ch3.md, then the chapter's figures (`experiments.ch3_plots`, which
reads the JSON). Sigmoid networks, mini-batch 10, cross-entropy; 3 seeds except the
400-epoch runs on 1,000 images and the more-data curve (one seed). ``--merge`` keeps the
records of other ids already in DIR/ch3.json, so the chapter can be run in parts.
``--set`` changes a RunConfig field of every selected run; ``--checkpoint-dir`` checkpoints
the training runs, the sweeps and the more-data curve (not the S-sweep timing).
"""

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import (
    ch3_plots,
    cli,
    command_line,
    common,
    interrupts,
    numpy_baselines,
    progress,
    result_files,
)
from experiments.run_config import RunConfig
from nnjax import checkpoint, data, init, monitor, network, optim, sweep, train

CE = dict(cost="cross_entropy", batch_size=10)
LARGE, DEFAULT = dict(init="large", **CE), dict(init="default", **CE)
VAL = dict(evaluate_on="validation")
# the broad-strategy probes; 3o's weights overflow (decay factor 1 − ηλ/n = −9), and the
# book reports the chance-level result of running on, so the NaN guard is off for them
BROAD = dict(train_size=1000, eval_size=100, epochs=30, nan_guard=False, **VAL, **DEFAULT)

RUNS = [
    RunConfig("3a", (784, 30, 10), eta=0.5, epochs=30, book=95.49, monitor_training=True, **LARGE),
    RunConfig("3b", (784, 100, 10), eta=0.5, epochs=30, book=96.82, **LARGE),
    RunConfig("3c", (784, 30, 10), eta=0.5, epochs=400, train_size=1000, monitor_training=True,
              seeds=1, book=82.27, note="peak; training accuracy reaches 100%; test cost lowest ≈ "
                                        "epoch 15", **LARGE),
    RunConfig("3e", (784, 30, 10), eta=0.5, epochs=400, lmbda=0.1, train_size=1000,
              monitor_training=True, seeds=1, book=87.1, note="peak with L2, λ = 0.1", **LARGE),
    RunConfig("3f", (784, 30, 10), eta=0.5, epochs=30, lmbda=5.0, book=96.49, **LARGE),
    # 3g and 3h: network2.py's default 1/√n_in initialiser, which matches the book's figures
    # (docs/book.md)
    RunConfig("3g", (784, 100, 10), eta=0.5, epochs=30, lmbda=5.0, book=97.92, note="validation",
              **VAL, **DEFAULT),
    RunConfig("3h", (784, 100, 10), eta=0.1, epochs=60, lmbda=5.0, book=98.04, note="validation",
              **VAL, **DEFAULT),
    RunConfig("3k/large", (784, 30, 10), eta=0.1, epochs=30, lmbda=5.0, note="after epoch 1: book "
                                                                             "< 87%",
              **VAL, **LARGE),
    RunConfig("3k/default", (784, 30, 10), eta=0.1, epochs=30, lmbda=5.0, note="after epoch 1: "
                                                                               "book ≈ 93%",
              **VAL, **DEFAULT),
    RunConfig("3l/large", (784, 100, 10), eta=0.1, epochs=30, lmbda=5.0, note="curves nearly meet "
                                                                              "by epoch 30",
              **VAL, **LARGE),
    RunConfig("3l/default", (784, 100, 10), eta=0.1, epochs=30, lmbda=5.0, note="curves nearly "
                                                                                "meet by epoch 30",
              **VAL, **DEFAULT),
    RunConfig("3n", (784, 30, 10), eta=10.0, epochs=30, lmbda=1000.0, note="final; book: chance (≈ "
                                                                           "10%)",
              **VAL, **DEFAULT),
    RunConfig("3o", (784, 10), eta=10.0, lmbda=1000.0, note="final; book: 10/100, chance", **BROAD),
    RunConfig("3p", (784, 10), eta=10.0, lmbda=20.0, note="final; book: 12, 14, 25, 18 /100: a "
                                                          "signal", **BROAD),
    RunConfig("3q", (784, 10), eta=100.0, lmbda=20.0, note="final; book: 10/100, chance again",
              **BROAD),
    RunConfig("3r", (784, 10), eta=1.0, lmbda=20.0, note="final; book: 62, 42, 43, 61 /100: better",
              **BROAD),
    # our own numbers for what the book describes without reporting
    RunConfig("X-L1/1000", (784, 30, 10), eta=0.5, epochs=400, lmbda=0.1, l1=True, train_size=1000,
              monitor_training=True, seeds=1, note="ours: 3e with L1 instead of L2", **LARGE),
    RunConfig("X-L1/50k", (784, 30, 10), eta=0.5, epochs=30, lmbda=5.0, l1=True,
              note="ours: 3f with L1", **LARGE),
    RunConfig("X-early-stopping", (784, 30, 10), eta=0.1, epochs=300, lmbda=5.0, stop_after=10,
              note="ours: no-improvement-in-10, at most 300 epochs", **VAL, **DEFAULT),
    RunConfig("X-eta-schedule", (784, 30, 10), eta=0.5, epochs=400, lmbda=5.0, halve_eta_after=10,
              note="ours: halve η at no-improvement-in-10 until η₀/128", **VAL, **DEFAULT),
    RunConfig("X-tanh", (784, 30, 10), eta=0.1, epochs=30, lmbda=5.0, activation="tanh",
              note="ours: 3k/default with tanh hidden neurons", **VAL, **DEFAULT),
    RunConfig("X-relu", (784, 30, 10), eta=0.1, epochs=30, lmbda=5.0, activation="relu",
              note="ours: 3k/default with ReLU hidden neurons", **VAL, **DEFAULT),
]
# configurations trained together as one vmapped program: (base config, hyperparameter, values)
SWEEPS = [
    (RunConfig("3m", (784, 30, 10), eta=0.25, epochs=30, lmbda=5.0, monitor_training=True,
               note="training cost: 0.025 smooth; 0.25 flattens after ~20 epochs; 2.5 oscillates",
               **VAL, **DEFAULT),
     "learning_rate", (0.025, 0.25, 2.5)),
    (RunConfig("X-momentum", (784, 30, 10), eta=0.1, epochs=30, lmbda=5.0, momentum=0.5,
               note="ours: momentum μ with η 0.1, λ 5", **VAL, **DEFAULT),
     "momentum", (0.0, 0.5, 0.9)),
]
MORE_DATA = RunConfig("3i", (784, 30, 10), eta=0.5, epochs=30, seeds=1, **VAL, **LARGE,
                      note="the more-data curve: the first N images for 1,500,000/N epochs, λ = "
                           "5·N/50,000")
# the more-data curve's training-set sizes
SIZES = (100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000)
IMAGES_SEEN = 1_500_000  # 3i trains each N for IMAGES_SEEN / N epochs (30 epochs of 50,000)
LABEL = {"learning_rate": "eta", "momentum": "mu"}  # record ids of swept values, e.g. "3m/eta=0.25"
TIMING = RunConfig("S-sweep", (784, 30, 10), eta=0.1, epochs=3, lmbda=5.0, **DEFAULT)
SWEEP_ETAS = tuple(float(v) for v in np.geomspace(0.025, 2.5, 8))


def group(id_: str) -> str:
    """The --only name of a record id: "3k/large" → "3k"."""
    return id_.split("/")[0]


# the --only names, in the order of the results table
IDS = ["3a", "3b", "3c", "3d", "3e", "3f", "3g", "3h", "3i", "3j", "3k", "3l", "3m", "3n", "3o",
       "3p", "3q", "3r", "X-L1", "X-momentum", "X-early-stopping", "X-eta-schedule", "X-tanh",
       "X-relu", "S-sweep"]


def quick(cfg: RunConfig) -> RunConfig:
    """The smoke version: at most 2 epochs on 1,000 images, evaluated on 500, one seed."""
    return dataclasses.replace(cfg, epochs=min(cfg.epochs, 2),
                               train_size=min(cfg.train_size or 50_000, 1000),
                               eval_size=min(cfg.eval_size or 10_000, 500), seeds=1,
                               stop_after=cfg.stop_after and 1,
                               halve_eta_after=cfg.halve_eta_after and 1)


def seeds_for(cfg: RunConfig, n: int) -> list[int]:
    return list(range(cfg.seeds or n))


def percent_series(counts, n) -> list[float]:
    return [result_files.percent(c, n) for c in counts]


def overfitting_extras(per_seed: list[dict]) -> dict:
    """3c/3e: best training accuracy, and the epoch where the evaluation cost is lowest."""
    r = per_seed[0]
    h = r["history"]
    return {"training_accuracy_max": max(percent_series(h["training_accuracy"], r["n_train"])),
            "evaluation_cost_min_epoch": int(np.argmin(h["evaluation_cost"]))}


def network_records(cfg: RunConfig, mnist, n_seeds: int, verbose: bool,
                    **fit_options) -> list[dict]:
    per_seed = common.run_seeds(cfg, mnist, seeds_for(cfg, n_seeds), verbose=verbose, **fit_options)
    first = [r["accuracy"][0] if r["accuracy"] else None for r in per_seed]
    extra = {"first_epoch_mean": result_files.mean_of(first),
             "final_mean": result_files.mean_of([r["final"] for r in per_seed]),
             "epochs_run_mean": float(np.mean([len(r["accuracy"]) for r in per_seed]))}
    if cfg.id in ("3c", "3e", "X-L1/1000"):
        extra.update(overfitting_extras(per_seed))
    metric = "final" if cfg.id in ("3n", "3o", "3p", "3q", "3r") else "peak"
    records = [result_files.make_record(cfg, per_seed, metric=metric, **extra)]
    if cfg.id == "3a":  # 3d: the same runs, training against test accuracy at the end
        for r in per_seed:
            r["final_training"] = result_files.percent(r["history"]["training_accuracy"][-1],
                                                       r["n_train"])
        d = dataclasses.replace(cfg, id="3d", book=97.86, note="final training accuracy (the 3a "
                                                               "runs); "
                                "book: train 97.86% vs test 95.33%")
        records.append(result_files.make_record(d, per_seed, metric="final_training",
                                                final_test_mean=extra["final_mean"]))
    return records


def sweep_records(cfg: RunConfig, name: str, values, mnist, n_seeds: int, verbose: bool, *,
                  checkpoint_dir=None, checkpoint_every: int = 1,
                  resume: bool = False) -> list[dict]:
    """One vmapped program trains every (value, seed) pair; one record per value.

    With ``checkpoint_dir`` the program checkpoints into ``checkpoint_dir/<id>/sweep``;
    on Ctrl-C the records of the finished epochs are raised in `common.Interrupted`.
    """
    net = cfg.network()
    training, evaluation = common.select_data(mnist, cfg)
    seeds = seeds_for(cfg, n_seeds)
    members = [(v, s) for v in values for s in seeds]
    # (init key, training key), as run_seeds
    split = {s: jax.random.split(jax.random.key(s)) for s in seeds}
    params = sweep.stack([init.init_params(split[s][0], net.sizes, cfg.init) for _, s in members])
    keys = jnp.stack([split[s][1] for _, s in members])
    show = progress.progress_printer(cfg.id, cfg.epochs, len(evaluation[1])) if verbose else None
    pinned = {k: v for k, v in dataclasses.asdict(cfg).items()
              if k not in ("book", "note", "epochs", "seeds")}
    opt = common.optimizer_for(cfg, len(training[1]))
    state = sweep.init(params, opt, {name: jnp.array([v for v, _ in members])}, keys)
    program = train.make_epoch(common.gradient_fn(net, cfg.gradient), opt, cfg.batch_size,
                               members=True)
    pieces = common.pieces_for(cfg, net, evaluation, members=True, resume=resume,
                               pin=pinned | {"members": members},
                               checkpoint_dir=checkpoint_dir
                               and Path(checkpoint_dir) / cfg.id / "sweep",
                               checkpoint_every=checkpoint_every)
    start = time.perf_counter()
    try:
        _, hist = train.fit(program, state, training, epochs=cfg.epochs, pieces=pieces,
                            on_epoch=show)
    except train.Interrupted as stop:
        done = stop.history["epoch"]
        raise common.Interrupted(value_records(cfg, name, values, members, stop.history,
                                               time.perf_counter() - start, training, evaluation,
                                               interrupted=True, epochs_done=len(done))
                                 if done else []) from None
    return value_records(cfg, name, values, members, hist, time.perf_counter() - start, training,
                         evaluation)


def value_records(cfg: RunConfig, name: str, values, members, hist: dict, wall: float, training,
                  evaluation, **extra) -> list[dict]:
    """The records of a sweep, one per swept value, from the program's stacked history."""
    records = []
    for v in values:
        per_seed = []
        for i, (v_i, s) in enumerate(members):
            if v_i != v:
                continue
            h = {k: [e[i] if isinstance(e, list) else e for e in series] for k,
                 series in hist.items()}
            per_seed.append(common.seed_result(s, h, wall / len(members), len(training[1]),
                                               len(evaluation[1])))
        sub = dataclasses.replace(cfg, id=f"{cfg.id}/{LABEL[name]}={v}",
                                  **{"eta" if name == "learning_rate" else name: v})
        final_cost = (float(np.mean([r["history"]["training_cost"][-1] for r in per_seed]))
                      if cfg.monitor_training else None)
        records.append(result_files.make_record(sub, per_seed, metric="peak", swept=name,
                                                sweep_members=len(members),
                                          sweep_wall_s=wall, final_training_cost_mean=final_cost,
                                                **extra))
    return records


def more_data_records(cfg: RunConfig, mnist, sizes, images_seen: int, svm_max: int, run: set,
                      verbose: bool, checkpoint_dir=None, checkpoint_every: int = 1,
                      resume: bool = False) -> list[dict]:
    """3i: [784,30,10] on the first N images for 1.5M/N epochs, λ = 5·N/50,000; 3j: SVC on the same
    N.

    With ``checkpoint_dir`` the run for each N checkpoints into ``checkpoint_dir/3i/n<N>``.
    """
    records = []
    if "3i" in run:
        curve, start = [], time.perf_counter()
        net = cfg.network()
        evaluation = common.select_data(mnist, cfg)[1]
        for n in sizes:
            c = dataclasses.replace(cfg, train_size=n, epochs=images_seen // n,
                                    lmbda=5.0 * n / 50_000)
            training = common.select_data(mnist, c)[0]
            k_init, k_train = jax.random.split(jax.random.key(0))
            t = time.perf_counter()
            ckpt = checkpoint_dir and Path(checkpoint_dir) / "3i" / f"n{n}"
            pinned = {k: v for k, v in dataclasses.asdict(c).items()
                      if k not in ("book", "note", "epochs")}
            opt, params = common.optimizer_for(c, n), init.init_params(k_init, net.sizes, c.init)
            pieces = [checkpoint.Checkpoints(ckpt, checkpoint_every, resume,
                                             pinned)] if ckpt else []
            state, _ = train.fit(train.make_epoch(common.gradient_fn(net, c.gradient), opt,
                                                  c.batch_size),
                                 train.State(params, opt.init(params), k_train,
                                             extra=monitor.counters()), training,
                                 epochs=c.epochs, pieces=pieces)
            params = state.params
            correct, _ = network.evaluate(params, *evaluation, net)
            curve.append({"n": n, "epochs": c.epochs, "lmbda": c.lmbda,
                          "accuracy": result_files.percent(int(correct), len(evaluation[1])),
                          "wall_s": time.perf_counter() - t})
            if verbose:
                print(f"[3i] N={n}: {curve[-1]['accuracy']:.2f}% ({curve[-1]['wall_s']:.0f} s)",
                      flush=True)
        records.append(curve_record("3i", 93.24, "validation accuracy at N = 5,000 (the more-data "
                                                 "curve)", curve,
                                    5000, dataclasses.asdict(cfg), time.perf_counter() - start))
    if "3j" in run:
        curve, start = [], time.perf_counter()
        tr, va = mnist.training, mnist.validation
        for n in [n for n in sizes if n <= svm_max]:
            t = time.perf_counter()
            correct = numpy_baselines.svm_baseline(tr.x, tr.y, va.x, va.y, n_train=n)
            curve.append({"n": n, "accuracy": result_files.percent(correct, len(va.y)),
                          "wall_s": time.perf_counter() - t})
            if verbose:
                print(f"[3j] SVC N={n}: {curve[-1]['accuracy']:.2f}% ({curve[-1]['wall_s']:.0f} s)",
                      flush=True)
        records.append(curve_record("3j", 94.48, "SVC(rbf, C=1, gamma=1/784) validation accuracy "
                                                 "at N = 50,000",
                                    curve, 50_000,
                                    {"method": "sklearn SVC", "C": 1.0, "gamma": 1 / 784},
                                    time.perf_counter() - start))
    return records


def curve_record(id_, book, note, curve, at, config, wall_s) -> dict:
    """One record for a curve; its number is the accuracy at N = ``at`` (the largest N if not
    run)."""
    point = next((p for p in curve if p["n"] == at), curve[-1])
    value, at = point["accuracy"], point["n"]
    return {"id": id_, "book": book, "note": note, "metric": f"accuracy at N={at}", "best": value,
            "mean": value, "std": 0.0, "seeds": [0], "per_seed": [{"seed": 0, "curve": curve}],
            "curve": curve, "config": config, "wall_s": wall_s, **result_files.environment()}


def timing_record(cfg: RunConfig, mnist, etas, verbose: bool) -> dict:
    """8 η as one vmapped program against the same 8 runs one after another, in this process."""
    net = cfg.network()
    training, _ = common.select_data(mnist, cfg)
    grad, n = common.gradient_fn(net, cfg.gradient), len(training[1])
    k_init, k_train = jax.random.split(jax.random.key(0))
    params = init.init_params(k_init, net.sizes, cfg.init)
    seq = []
    for eta in etas:
        t = time.perf_counter()
        opt = optim.sgd(eta, lmbda=cfg.lmbda, n=n)
        _, h = train.fit(train.make_epoch(grad, opt, cfg.batch_size),
                         train.State(params, opt.init(params), k_train), training,
                         epochs=cfg.epochs)
        seq.append({"total_s": time.perf_counter() - t, "steady_s": sum(h["seconds"][1:])})
    t = time.perf_counter()
    opt = common.optimizer_for(cfg, n)
    state = sweep.init(sweep.stack([params] * len(etas)), opt, {"learning_rate": jnp.array(etas)},
                       jnp.stack([k_train] * len(etas)))
    _, h = train.fit(train.make_epoch(grad, opt, cfg.batch_size, members=True), state, training,
                     epochs=cfg.epochs)
    one = {"total_s": time.perf_counter() - t, "steady_s": sum(h["seconds"][1:])}
    seq_total, seq_steady = sum(r["total_s"] for r in seq), sum(r["steady_s"] for r in seq)
    result = {"etas": list(etas), "epochs": cfg.epochs, "sequential": seq,
              "sequential_total_s": seq_total, "sequential_steady_s": seq_steady,
              "sweep_total_s": one["total_s"], "sweep_steady_s": one["steady_s"],
              "speedup_total": seq_total / one["total_s"],
              "speedup_steady": seq_steady / one["steady_s"]}
    if verbose:
        print(f"[S-sweep] 8 runs one by one {seq_total:.1f} s, one program {one['total_s']:.1f} s "
              f"(steady epochs: {seq_steady:.1f} s vs {one['steady_s']:.1f} s)", flush=True)
    return {"id": "S-sweep", "book": None, "metric": "speed-up of one vmapped program over 8 runs",
            "best": None, "mean": None, "std": None, "seeds": [0], "per_seed": [], "timing": result,
            "note": f"8 η, {cfg.epochs} epochs each, [784,30,10] on {n} images: "
                    f"{result['speedup_total']:.2f}× overall, {result['speedup_steady']:.2f}× "
                                                       "after compiling (epochs 2+)",
            "config": dataclasses.asdict(cfg), "wall_s": seq_total + one["total_s"],
            **result_files.environment()}


def summary_md(records: list[dict]) -> str:
    """The curves and first-epoch numbers that the one-line table cannot show."""
    lines = []
    by_id = {r["id"]: r for r in records}
    first = [r for r in records if r["id"].startswith(("3k/", "3l/"))]
    if first:
        lines += ["Validation accuracy after epoch 1 (mean over seeds):", ""]
        lines += [f"- {r['id']}: {r['first_epoch_mean']:.2f}%" for r in first] + [""]
    for id_ in ("3i", "3j"):
        if id_ in by_id:
            lines += [f"{id_} curve: " + ", ".join(f"N={p['n']}: {p['accuracy']:.2f}%"
                                                   for p in by_id[id_]["curve"]), ""]
    for id_ in ("3c", "3e", "X-L1/1000"):
        if id_ in by_id:
            r = by_id[id_]
            lines += [f"{id_}: training accuracy reaches {r['training_accuracy_max']:.2f}%; "
                      f"evaluation cost lowest at epoch {r['evaluation_cost_min_epoch']}", ""]
    if "3d" in by_id:
        lines += [f"3d: final training {by_id['3d']['mean']:.2f}% vs test "
                  f"{by_id['3d']['final_test_mean']:.2f}% (means over seeds)", ""]
    if "S-sweep" in by_id:
        t = by_id["S-sweep"]["timing"]
        lines += [f"S-sweep: 8 runs one by one {t['sequential_total_s']:.1f} s, one vmapped "
                  f"program {t['sweep_total_s']:.1f} s ({t['speedup_total']:.2f}×); after "
                  f"compiling {t['sequential_steady_s']:.1f} s vs {t['sweep_steady_s']:.1f} s "
                  f"({t['speedup_steady']:.2f}×).", ""]
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    p = command_line.add_run_options(command_line.base_parser(__doc__.splitlines()[0], IDS))
    p.add_argument("--svm-max", type=int, default=50_000, help="3j: largest SVC training set "
                                                               "(default 50,000)")
    p.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    args = command_line.parse_args(p, argv)
    run = command_line.parse_only(args.only, IDS)
    selected = ([c for c in RUNS if group(c.id) in run or (c.id == "3a" and "3d" in run)]
                + [c for c, _, _ in SWEEPS if c.id in run] + [MORE_DATA] * bool(run & {"3i", "3j"})
                + [TIMING] * ("S-sweep" in run))
    prepared = dict(zip([c.id for c in selected], command_line.prepare(p, args, selected, quick)))
    mnist = data.load(args.dataset, args.data_dir)
    verbose, fit_options = not args.quiet, command_line.fit_options(args)
    with interrupts.saving_on_interrupt(args, "ch3", IDS) as records:
        for cfg in RUNS:
            if cfg.id in prepared:
                records += network_records(prepared[cfg.id], mnist, args.seeds, verbose,
                                           **fit_options)
        for cfg, name, values in SWEEPS:
            if cfg.id in prepared:
                records += sweep_records(prepared[cfg.id], name, values, mnist, args.seeds, verbose,
                                         **fit_options)
        if run & {"3i", "3j"}:
            records += more_data_records(prepared[MORE_DATA.id],
                                         mnist, (100, 500) if args.quick else SIZES,
                                         2000 if args.quick else IMAGES_SEEN,
                                         min(args.svm_max, 500) if args.quick else args.svm_max,
                                         run, verbose, **fit_options)
        if "S-sweep" in run:
            records.append(timing_record(prepared[TIMING.id], mnist, SWEEP_ETAS, verbose))
    if args.merge:
        records = result_files.merge_saved(args.out, "ch3", records, IDS)
    order = {g: i for i, g in enumerate(IDS)}  # "3k/large" sorts as "3k"
    records.sort(key=lambda r: order.get(group(r["id"]), len(order)))
    path = result_files.report_saved(args.out, "ch3", records, summary_md(records))
    if not args.no_plots:
        for png in ch3_plots.plot_all(path):
            print(f"wrote {png}")
    return records


if __name__ == "__main__":
    cli.run(main)
