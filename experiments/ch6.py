"""Chapter 6: network3.py's convolutional networks, expanded data and ensembles on MNIST.

    python -m experiments.ch6 [--quick] [--seeds N] [--out DIR] [--only 6a,6f] [--set field=value ...]
                              [--checkpoint-dir DIR [--checkpoint-every K] [--resume]] [--compile-cache DIR]

Runs 6a–6l (docs/book.md) and writes DIR/ch6.json and DIR/ch6.md (and, for nets with conv
layers, DIR/ch6_<id>_filters.npz: the conv weights of the best run), then the figures
(`experiments.ch6_plots`; ``--no-plots`` skips them).
Mini-batch 10, network3's initialisation, L2 scaling, dropout and fixed training order
unless a config says otherwise. After every epoch each network is evaluated on the
validation and the test set; the figure reported, as in the book, is the test accuracy
at the epoch of best validation accuracy. An ensemble (6l) trains its members as one
vmapped program; member i uses seed N·s + i, so its members are the 6k runs of those
seeds. ``--set field=value`` overrides a ConvConfig field for every selected run, e.g.
``--set epochs=5 --set shuffle=true --set dropout_mode=inverted`` (after --quick's changes).
``--checkpoint-dir DIR`` checkpoints every run into DIR/<id>/seed<s>; ``--resume`` continues.
"""

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import ch6_plots, cli, common
from nnjax import checkpoint, conv, conv_backprop, convnet, data, ensemble, expand, optim, parallel, train, validate


@dataclass(frozen=True)
class ConvConfig:
    """One network3-style training run (or ensemble), as docs/book.md lists it."""

    id: str  # the run id (docs/book.md), e.g. "6f"
    convs: tuple[int, ...] = ()  # feature maps of each 5×5 conv layer (each followed by 2×2 max-pool and σ)
    fc: tuple[int, ...] = (100,)  # fully connected hidden layers
    activation: str = "sigmoid"  # σ of conv and hidden layers: sigmoid | tanh | relu
    eta: float = 0.1  # learning rate η
    lmbda: float = 0.0  # L2 regularisation λ
    epochs: int = 60  # passes over the training data
    batch_size: int = 10  # mini-batch size m
    dropout: float = 0.0  # p, dropped from the inputs of every FC and the softmax layer
    dropout_mode: str = "network3"  # network3 (scale by 1−p at test) | inverted (scale by 1/(1−p) in training)
    init: str = "network3"  # network3 (FC 1/n_out, conv 1/(F·25/4)) | default (1/n_in)
    l2_scaling: str = "network3"  # network3 (decay ηλm/n per step) | network2 (ηλ/n)
    shuffle: bool = False  # reshuffle every epoch (network3 keeps one fixed order)
    expand: str = "none"  # none | shifts (the book's 250k) | shifts+rotate | shifts+elastic
    expand_seed: int = 0  # key of the one-time permutation of expanded data (and its distortions)
    members: int = 1  # ensemble size; >1 trains the members as one vmapped program (6l: 5)
    train_size: int | None = None  # train on the first N training images (None: all 50,000)
    eval_size: int | None = None  # evaluate on the first N validation and test images (None: all)
    gradient: str = "autodiff"  # autodiff (jax.grad) | backprop (nnjax.conv_backprop, no dropout)
    conv_impl: str = "auto"  # auto | im2col | lax (nnjax.conv)
    book: float | None = None  # the book's reported accuracy in percent, if any
    note: str = ""  # what the book says

    def __post_init__(self):
        """Check every field before anything runs; errors name the field, expected and got."""
        validate.positive("eta", self.eta, "the learning rate η")
        validate.non_negative("lmbda", self.lmbda, "the regularisation parameter λ")
        validate.probability("dropout", self.dropout, "the dropout probability p")
        for field in ("epochs", "batch_size", "members"):
            validate.integer(field, getattr(self, field), 1)
        for field in ("train_size", "eval_size"):
            if getattr(self, field) is not None:
                validate.integer(field, getattr(self, field), self.batch_size if field == "train_size" else 1)
        for field, choices in CHOICES.items():
            if getattr(self, field) not in choices:
                raise ValueError(f"ConvConfig {self.id}: {field} must be one of {choices}, got {getattr(self, field)!r}")
        if self.gradient == "backprop" and self.dropout:
            raise ValueError(f"ConvConfig {self.id}: gradient='backprop' (nnjax.conv_backprop) has no dropout "
                             "rule; use gradient='autodiff'")
        convnet.build(self.arch(), init=self.init, dropout_mode=self.dropout_mode, conv_impl=self.conv_impl)

    def arch(self) -> tuple:
        return convnet.network3_arch(self.convs, self.fc, self.activation, 10, self.dropout)


CHOICES = {
    "activation": ("sigmoid", "tanh", "relu"), "dropout_mode": ("network3", "inverted"),
    "init": ("network3", "default"), "l2_scaling": convnet.L2_SCALINGS,
    "expand": ("none", "shifts", "shifts+rotate", "shifts+elastic"), "gradient": ("autodiff", "backprop"),
    "conv_impl": ("auto",) + conv.IMPLS,
}
CONV2 = dict(convs=(20, 40), activation="relu", eta=0.03, lmbda=0.1)
BIG = dict(convs=(20, 40), fc=(1000, 1000), activation="relu", eta=0.03, epochs=40, dropout=0.5, expand="shifts")
RUNS = [
    ConvConfig("6a", book=97.80, note="FC100 → softmax, sigmoid"),
    ConvConfig("6b", convs=(20,), book=98.78, note="conv20 → FC100, sigmoid"),
    ConvConfig("6c", convs=(20,), fc=(), note="conv20 → softmax (exercise); not reported"),
    ConvConfig("6d", convs=(20, 40), book=99.06, note="conv20 → conv40 → FC100, sigmoid"),
    ConvConfig("6e", convs=(20, 40), activation="tanh", note="6d with tanh (problem): 'very similar'"),
    ConvConfig("6f", **CONV2, book=99.23, note="6d with ReLU, η 0.03, λ 0.1"),
    ConvConfig("6g", **CONV2, expand="shifts", book=99.37, note="6f on 250k expanded images"),
    ConvConfig("6h", **CONV2, fc=(300,), expand="shifts", book=99.46, note="6g with FC300 (book: FC1000 99.43)"),
    ConvConfig("6i", **CONV2, fc=(100, 100), expand="shifts", book=99.43, note="6g with FC100 → FC100"),
    ConvConfig("6j", **CONV2, fc=(300, 300), expand="shifts", book=99.48, note="two FC300 (book: two FC1000 99.47)"),
    ConvConfig("6k", **BIG, book=99.60, note="two FC1000, dropout 0.5, 40 epochs, 250k"),
    ConvConfig("6l", **BIG, members=5, book=99.67, note="ensemble of 5 × 6k, plurality vote"),
]
IDS = [c.id for c in RUNS]  # the --only names, in the order of the results table
METRIC = "test_at_best_validation"


def quick(cfg: ConvConfig) -> ConvConfig:
    """The smoke version: one epoch on 200 training images, 500 evaluation images, ≤ 2 members."""
    return dataclasses.replace(cfg, epochs=1, train_size=200, eval_size=500, members=min(cfg.members, 2))


def prepare_data(cfg: ConvConfig, mnist: data.MNIST):
    """Training, validation and test sets on the device as NHWC images, expanded as configured."""
    def images(split, n=None):
        return jnp.asarray(split.x[:n]).reshape(-1, 28, 28, 1), jnp.asarray(split.y[:n])

    x, y = images(mnist.training, cfg.train_size)
    key = jax.random.key(cfg.expand_seed)
    if cfg.expand != "none":
        k_order, k_distort = jax.random.split(key)
        extra_x, extra_y = [], []
        if cfg.expand == "shifts+rotate":
            for deg in (-10.0, 10.0):
                extra_x.append(expand.rotate(x, jnp.full(x.shape[0], deg)))
                extra_y.append(y)
        elif cfg.expand == "shifts+elastic":
            extra_x, extra_y = [expand.elastic(x, k_distort)], [y]
        x5, y5 = expand.shifts(x, y)
        order = jax.random.permutation(k_order, x5.shape[0] + sum(e.shape[0] for e in extra_x))
        x, y = jnp.concatenate([x5, *extra_x])[order], jnp.concatenate([y5, *extra_y])[order]
    return (x, y), images(mnist.validation, cfg.eval_size), images(mnist.test, cfg.eval_size)


def programs(cfg: ConvConfig, n: int, members: int):
    """The network and the jitted (epoch, outputs) programs; vmapped over members when members > 1."""
    arch = cfg.arch()
    net = convnet.build(arch, init=cfg.init, dropout_mode=cfg.dropout_mode, conv_impl=cfg.conv_impl)
    l2 = dict(lmbda=cfg.lmbda, n=n, batch_size=cfg.batch_size, l2_scaling=cfg.l2_scaling)
    if cfg.gradient == "autodiff":
        grad = convnet.make_grad(net.apply, **l2)
    else:
        grad = conv_backprop.make_grad(arch, impl=cfg.conv_impl, **l2)
    opt = optim.sgd(cfg.eta)
    args = (grad, opt, cfg.batch_size, cfg.shuffle, cfg.dropout > 0)
    def outputs(params, x):
        return convnet.outputs(net.apply, params, x)
    if members == 1:
        return net, opt, jax.jit(train.make_epoch(*args)), jax.jit(lambda p, x: outputs(p, x)[None])
    return net, opt, jax.jit(ensemble.make_epoch(*args)), jax.jit(jax.vmap(outputs, in_axes=(0, None)))


def percent(predictions, labels) -> float:
    """Accuracy in percent, from the exact count of correct predictions."""
    return common.percent(int(jnp.sum(predictions == labels)), len(labels))


def train_members(cfg: ConvConfig, datasets, seeds: list[int], verbose: bool, checkpoint_dir=None,
                  checkpoint_every: int = 1, resume: bool = False):
    """Train one network per seed (one vmapped program when several); evaluate every epoch.

    A generator: after each epoch it yields the result so far, so the last one yielded is
    the run's result and a Ctrl-C keeps the finished epochs' one. A result holds the
    per-epoch histories (member and, for ensembles, combined accuracies on validation and
    test), the test accuracy at the best-validation epoch, the test errors there and the
    conv weights there.
    With ``checkpoint_dir`` the whole state (params, optimiser state, keys, history and
    the best-validation epoch's errors and filters) is saved there every
    ``checkpoint_every`` epochs and after the last (`nnjax.checkpoint`), and ``resume``
    continues from the newest intact one: the result is bit-identical to an
    uninterrupted run's.
    """
    (x, y), (xv, yv), (xt, yt) = datasets
    ensemble_run = len(seeds) > 1
    net, opt, run_epoch, outputs = programs(cfg, x.shape[0], len(seeds))
    k_init, k_train = jnp.stack([jnp.stack(jax.random.split(jax.random.key(s))) for s in seeds], axis=1)
    params = ensemble.init_members(net.init, k_init, (28, 28, 1))
    if not ensemble_run:
        params, k_train = jax.tree_util.tree_map(lambda a: a[0], params), k_train[0]
    opt_state = jax.vmap(opt.init)(params) if ensemble_run else opt.init(params)
    hist = {"validation_accuracy": [], "test_accuracy": [], "seconds": []}
    if ensemble_run:
        hist.update({"member_validation_accuracy": [], "member_test_accuracy": [],
                     "mean_probability_validation_accuracy": [], "mean_probability_test_accuracy": []})
    best = {"best_validation": -1.0, "filters": conv_weights(cfg, params, ensemble_run)}
    start_epoch, config = 0, {**{k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("book", "note", "epochs")},
                              "seeds": seeds}
    if checkpoint_dir is not None:
        found = checkpoint.resume_point(checkpoint_dir, saved_state(params, opt_state, k_train, best), config=config,
                                        key=k_train, epochs=cfg.epochs, resume=resume)
        if found is not None:
            params, opt_state = found.state["params"], found.state["opt_state"]
            hist, start_epoch = found.history["history"], found.epoch
            best = {**found.history["best"], "filters": found.state["filters"]}
    if ensemble_run and len(seeds) % jax.device_count() == 0:  # members split over several devices
        params, opt_state, k_train = parallel.shard_members((params, opt_state, k_train))
    label = f"{cfg.id} seed{'s' * ensemble_run} {','.join(map(str, seeds))}"
    show = common.progress_printer(label, cfg.epochs, len(yv)) if verbose else None
    start = time.perf_counter()
    for e in range(start_epoch, cfg.epochs):
        t = time.perf_counter()
        keys = jax.vmap(jax.random.fold_in, (0, None))(k_train, e) if ensemble_run else jax.random.fold_in(k_train, e)
        params, opt_state = run_epoch(params, opt_state, keys, x, y)
        jax.block_until_ready(params)
        seconds = time.perf_counter() - t
        pred_v, pred_t = evaluate_epoch(hist, outputs, params, (xv, yv), (xt, yt), ensemble_run)
        hist["seconds"].append(seconds)
        val = hist["validation_accuracy"][-1]
        if val > best["best_validation"]:
            wrong = np.flatnonzero(np.asarray(pred_t != yt))
            best = {"best_validation_epoch": e, "best_validation": val,
                    "errors": [[int(i), int(yt[i]), int(pred_t[i])] for i in wrong],
                    "filters": conv_weights(cfg, params, ensemble_run)}
        if checkpoint_dir is not None and ((e + 1) % checkpoint_every == 0 or e + 1 == cfg.epochs):
            checkpoint.save(checkpoint_dir, e + 1, saved_state(params, opt_state, k_train, best),
                            history={"history": hist, "best": {k: v for k, v in best.items() if k != "filters"}},
                            config=config)
        yield result(hist, best, seeds, time.perf_counter() - start)
        if show:  # after the yield: a Ctrl-C here keeps this epoch's result
            show({"epoch": e, "evaluation_accuracy": int(round(val * len(yv) / 100)), "seconds": seconds})
    if start_epoch == cfg.epochs:  # resumed after the last epoch: nothing left to train
        yield result(hist, best, seeds, 0.0)


def conv_weights(cfg: ConvConfig, params, ensemble_run: bool) -> list:
    """The conv layers' weights (an ensemble's first member's), for the filter figures."""
    return [p["w"][0] if ensemble_run else p["w"] for spec, p in zip(cfg.arch(), params) if spec[0] == "conv"]


def saved_state(params, opt_state, keys, best: dict) -> dict:
    """The arrays a checkpoint holds; the history and the best epoch's errors travel as its history."""
    return {"params": params, "opt_state": opt_state, "key": keys, "filters": best["filters"]}


def evaluate_epoch(hist: dict, outputs, params, validation, test, ensemble_run: bool):
    """Append this epoch's accuracies to ``hist``; return the (combined) predictions on both sets."""
    (xv, yv), (xt, yt) = validation, test
    zv, zt = outputs(params, xv), outputs(params, xt)  # (members, n, 10)
    pred_v, pred_t = jnp.argmax(zv, -1), jnp.argmax(zt, -1)
    if ensemble_run:
        hist["member_validation_accuracy"].append([percent(p, yv) for p in pred_v])
        hist["member_test_accuracy"].append([percent(p, yt) for p in pred_t])
        for name, z, yy in (("validation", zv, yv), ("test", zt, yt)):
            mp = ensemble.mean_probability(jax.nn.softmax(z, axis=-1))
            hist[f"mean_probability_{name}_accuracy"].append(percent(mp, yy))
        pred_v, pred_t = ensemble.plurality_vote(pred_v), ensemble.plurality_vote(pred_t)
    else:
        pred_v, pred_t = pred_v[0], pred_t[0]
    hist["validation_accuracy"].append(percent(pred_v, yv))
    hist["test_accuracy"].append(percent(pred_t, yt))
    return pred_v, pred_t


def result(hist: dict, best: dict, seeds: list[int], wall_s: float) -> dict:
    """A run's result from its history and best-validation epoch (see `train_members`)."""
    at = {**best, "filters": [np.asarray(f) for f in best["filters"]]}
    if len(seeds) > 1:  # each member on its own, as if trained alone: test at its best-validation epoch
        member_val, member_test = np.array(hist["member_validation_accuracy"]), np.array(hist["member_test_accuracy"])
        at["member_" + METRIC] = member_test[np.argmax(member_val, axis=0), np.arange(len(seeds))].tolist()
        at["mean_probability_" + METRIC] = hist["mean_probability_test_accuracy"][at["best_validation_epoch"]]
    return {"seeds": seeds, METRIC: hist["test_accuracy"][at["best_validation_epoch"]], **at,
            "peak_test": max(hist["test_accuracy"]), "final_test": hist["test_accuracy"][-1],
            "epochs_done": len(hist["test_accuracy"]), "history": copy.deepcopy(hist), "wall_s": wall_s}


def run(cfg: ConvConfig, mnist: data.MNIST, seeds: list[int], verbose: bool = True, checkpoint_dir=None,
        **checkpoint_options) -> tuple[dict, list]:
    """The results record of one row, and the conv filters of its best run.

    With ``checkpoint_dir``, seed s checkpoints into ``checkpoint_dir/<id>/seed<s>``. On
    Ctrl-C, `common.Interrupted` carries the record of the finished seeds and epochs.
    """
    datasets = prepare_data(cfg, mnist)
    per_seed = []
    for s in seeds:
        members = [cfg.members * s + i for i in range(cfg.members)]
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / cfg.id / f"seed{s}"
        r = None
        try:
            for r in train_members(cfg, datasets, members, verbose, ckpt, **checkpoint_options):
                pass
        except KeyboardInterrupt:
            done = per_seed + [{"seed": s, **r}] * (r is not None)
            raise common.Interrupted([record(cfg, done, datasets, interrupted=True)[0]] if done else []) from None
        per_seed.append({"seed": s, **r})
    return record(cfg, per_seed, datasets)


def record(cfg: ConvConfig, per_seed: list[dict], datasets, **extra) -> tuple[dict, list]:
    """The results record of per-seed results, and the conv filters of the best one."""
    best = max(per_seed, key=lambda r: r[METRIC])
    filters = best["filters"]
    per_seed = [{k: v for k, v in r.items() if k != "filters"} for r in per_seed]
    extra |= {"train_images": int(datasets[0][0].shape[0]),
              "seconds_per_epoch": float(np.median([t for r in per_seed for t in r["history"]["seconds"]] or [0.0]))}
    return common.make_record(cfg, per_seed, metric=METRIC, **extra), filters


def main(argv=None) -> list[dict]:
    p = common.add_run_options(common.base_parser(__doc__.splitlines()[0], IDS), ConvConfig)
    p.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    p.set_defaults(gradient="autodiff")
    next(a for a in p._actions if a.dest == "gradient").help = (
        "gradient method: jax.grad (autodiff, the default) or nnjax.conv_backprop by hand (backprop; no dropout)")
    args = common.parse_args(p, argv)
    ids = common.parse_only(args.only, IDS)
    configs = common.prepare(p, args, [c for c in RUNS if c.id in ids], quick)
    mnist = data.load_mnist(args.data_dir)
    seeds = list(range(1 if args.quick else args.seeds))
    with common.saving_on_interrupt(args, "ch6", IDS) as records:
        for cfg in configs:
            rec, filters = run(cfg, mnist, seeds, not args.quiet, **common.fit_options(args))
            records.append(rec)
            saved = common.merge_saved(args.out, "ch6", records, IDS) if args.merge else records
            path = common.write_results(args.out, "ch6", saved)  # after every row: partial results survive
            if filters:
                np.savez(path.parent / f"ch6_{cfg.id}_filters.npz", *filters)
    print(common.markdown_table(records))
    print(f"wrote {path}")
    if not args.no_plots:
        for png in ch6_plots.plot_all(path, data_dir=args.data_dir):
            print(f"wrote {png}")
    return records


if __name__ == "__main__":
    cli.run(main)
