"""Chapter 6: network3.py's convolutional networks, expanded data and ensembles on MNIST.

    python -m experiments.ch6 [--quick] [--seeds N] [--out DIR] [--only 6a,6f] [--set field=value ...]

Runs 6a–6l of BOOK.md and writes DIR/ch6.json and DIR/ch6.md (and, for nets with conv
layers, DIR/ch6_<id>_filters.npz: the conv weights of the best run, for the figures).
Mini-batch 10, network3's initialisation, L2 scaling, dropout and fixed training order
unless a config says otherwise. After every epoch each network is evaluated on the
validation and the test set; the figure reported, as in the book, is the test accuracy
at the epoch of best validation accuracy. An ensemble (6l) trains its members as one
vmapped program; member i uses seed N·s + i, so its members are the 6k runs of those
seeds. ``--set field=value`` overrides a ConvConfig field for every selected run, e.g.
``--set epochs=5 --set shuffle=true --set dropout_mode=inverted``.
"""

import dataclasses
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from nnjax import conv, conv_backprop, convnet, data, ensemble, expand, optim, train, validate


@dataclass(frozen=True)
class ConvConfig:
    """One network3-style training run (or ensemble), as BOOK.md's chapter-6 table gives it."""

    id: str  # the BOOK.md id, e.g. "6f"
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


def train_members(cfg: ConvConfig, datasets, seeds: list[int], verbose: bool) -> dict:
    """Train one network per seed (one vmapped program when several); evaluate every epoch.

    Returns the per-epoch histories (member and, for ensembles, combined accuracies on
    validation and test), the test accuracy at the best-validation epoch, the test errors
    there and the conv weights there.
    """
    (x, y), (xv, yv), (xt, yt) = datasets
    net, opt, run_epoch, outputs = programs(cfg, x.shape[0], len(seeds))
    k_init, k_train = jnp.stack([jnp.stack(jax.random.split(jax.random.key(s))) for s in seeds], axis=1)
    params = ensemble.init_members(net.init, k_init, (28, 28, 1))
    if len(seeds) == 1:
        params, k_train = jax.tree_util.tree_map(lambda a: a[0], params), k_train[0]
    opt_state = opt.init(params) if len(seeds) == 1 else jax.vmap(opt.init)(params)
    if len(seeds) > 1 and len(seeds) % jax.device_count() == 0:  # members split over several devices
        params, opt_state, k_train = ensemble.shard_members((params, opt_state, k_train))
    label = f"{cfg.id} seed{'s' * (len(seeds) > 1)} {','.join(map(str, seeds))}"
    show = common.progress_printer(label, cfg.epochs, len(yv)) if verbose else None
    hist = {"validation_accuracy": [], "test_accuracy": [], "seconds": []}
    if len(seeds) > 1:
        hist.update({"member_validation_accuracy": [], "member_test_accuracy": [],
                     "mean_probability_validation_accuracy": [], "mean_probability_test_accuracy": []})
    best = (-1.0, None)
    start = time.perf_counter()
    for e in range(cfg.epochs):
        t = time.perf_counter()
        keys = jax.random.fold_in(k_train, e) if len(seeds) == 1 else jax.vmap(jax.random.fold_in, (0, None))(k_train, e)
        params, opt_state = run_epoch(params, opt_state, keys, x, y)
        jax.block_until_ready(params)
        hist["seconds"].append(time.perf_counter() - t)
        zv, zt = outputs(params, xv), outputs(params, xt)  # (members, n, 10)
        pred_v, pred_t = jnp.argmax(zv, -1), jnp.argmax(zt, -1)
        if len(seeds) > 1:
            hist["member_validation_accuracy"].append([percent(p, yv) for p in pred_v])
            hist["member_test_accuracy"].append([percent(p, yt) for p in pred_t])
            for name, z, yy in (("validation", zv, yv), ("test", zt, yt)):
                mp = ensemble.mean_probability(jax.nn.softmax(z, axis=-1))
                hist[f"mean_probability_{name}_accuracy"].append(percent(mp, yy))
            pred_v, pred_t = ensemble.plurality_vote(pred_v), ensemble.plurality_vote(pred_t)
        else:
            pred_v, pred_t = pred_v[0], pred_t[0]
        val, test = percent(pred_v, yv), percent(pred_t, yt)
        hist["validation_accuracy"].append(val)
        hist["test_accuracy"].append(test)
        if val > best[0]:
            wrong = np.flatnonzero(np.asarray(pred_t != yt))
            errors = [[int(i), int(yt[i]), int(pred_t[i])] for i in wrong]
            convs = [np.asarray(p["w"] if len(seeds) == 1 else p["w"][0])  # an ensemble's first member
                     for spec, p in zip(cfg.arch(), params) if spec[0] == "conv"]
            best = (val, dict(best_validation_epoch=e, best_validation=val, errors=errors, filters=convs))
        if show:
            show({"epoch": e, "evaluation_accuracy": int(round(val * len(yv) / 100)), "seconds": hist["seconds"][-1]})
    at = best[1]
    if len(seeds) > 1:  # each member on its own, as if trained alone: test at its best-validation epoch
        member_val, member_test = np.array(hist["member_validation_accuracy"]), np.array(hist["member_test_accuracy"])
        at["member_" + METRIC] = member_test[np.argmax(member_val, axis=0), np.arange(len(seeds))].tolist()
        at["mean_probability_" + METRIC] = hist["mean_probability_test_accuracy"][at["best_validation_epoch"]]
    return {"seeds": seeds, METRIC: hist["test_accuracy"][at["best_validation_epoch"]], **at,
            "peak_test": max(hist["test_accuracy"]), "final_test": hist["test_accuracy"][-1],
            "history": hist, "wall_s": time.perf_counter() - start}


def run(cfg: ConvConfig, mnist: data.MNIST, seeds: list[int], verbose: bool = True) -> tuple[dict, list]:
    """The results record of one row, and the conv filters of its best run."""
    datasets = prepare_data(cfg, mnist)
    per_seed = []
    for s in seeds:
        members = [cfg.members * s + i for i in range(cfg.members)]
        r = train_members(cfg, datasets, members, verbose)
        per_seed.append({"seed": s, **r})
    best = max(per_seed, key=lambda r: r[METRIC])
    filters = best.pop("filters")
    for r in per_seed:
        r.pop("filters", None)
    extra = {"train_images": int(datasets[0][0].shape[0]),
             "seconds_per_epoch": float(np.median([t for r in per_seed for t in r["history"]["seconds"]]))}
    return common.make_record(cfg, per_seed, metric=METRIC, **extra), filters


def main(argv=None) -> list[dict]:
    p = common.base_parser(__doc__.splitlines()[0])
    p.set_defaults(gradient="autodiff")
    next(a for a in p._actions if a.dest == "gradient").help = (
        "gradient method: jax.grad (autodiff, the default) or nnjax.conv_backprop by hand (backprop; no dropout)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a ConvConfig field of every selected run, e.g. --set shuffle=true (repeatable)")
    args = p.parse_args(argv)
    ids = common.parse_only(args.only, IDS)
    try:
        configs = [common.override(dataclasses.replace(c, gradient=args.gradient), args.set)
                   for c in RUNS if c.id in ids]
    except (ValueError, TypeError) as e:
        p.error(str(e))
    mnist = data.load_mnist(args.data_dir)
    seeds = list(range(1 if args.quick else args.seeds))
    records = []
    for cfg in configs:
        record, filters = run(quick(cfg) if args.quick else cfg, mnist, seeds, not args.quiet)
        records.append(record)
        saved = common.merge_saved(args.out, "ch6", records, IDS) if args.merge else records
        path = common.write_results(args.out, "ch6", saved)  # after every row: partial results survive
        if filters:
            np.savez(path.parent / f"ch6_{cfg.id}_filters.npz", *filters)
    print(common.markdown_table(records))
    print(f"wrote {path}")
    return records


if __name__ == "__main__":
    main()
