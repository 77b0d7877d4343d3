"""Chapter 6: network3.py's convolutional networks, expanded data and ensembles on MNIST.

    python -m experiments.ch6 [--quick] [--seeds N | --seed-list S,...] [--out DIR] [--only 6a,6f]
                              [--workers W] [--resume] [--checkpoint-dir DIR] [--set field=value
                              ...]

Runs 6a–6l (docs/book.md) and writes DIR/ch6.json and DIR/ch6.md, DIR/ch6_<id>_filters.npz
(the conv weights of the best run, for the figures), DIR/ch6_networks/<hash>/seed<s>_<E>epochs.npz
(each finished network's result: its test and validation predictions at its best-validation
and last epochs, its conv filters, and its histories as JSON), then the figures
(`experiments.ch6_plots`; ``--no-plots`` skips them).
Mini-batch 10, network3's initialisation, L2 scaling, dropout and fixed training order
unless a config says otherwise. After every epoch each network is evaluated on the
validation and the test set; the figure reported, as in the book, is the test accuracy
at the epoch of best validation accuracy.

An ensemble (6l) of N members: ensemble s has the members of seeds N·s … N·s + N − 1.
With ``ensemble=separate`` (the default on a CPU) each member is trained on its own,
exactly as the 6k run of that seed, so 6k's seeds 0–4 are 6l's first ensemble and are
trained once for both; the ensemble votes with its members' saved predictions. With
``ensemble=vmapped`` (the default on a GPU) the members train as one vmapped program.

Full runs (not --quick) checkpoint every epoch into $NNJAX_RUNS_DIR, else ~/.cache/nnjax/runs
(outside the work tree), under ch6/<hash of the training settings>/seed<s>; ``--resume``
continues every unfinished run from its newest checkpoint and reads finished ones back
from DIR/ch6_networks (or their last checkpoint) without training, so the same command,
rerun, picks up where it stopped; committed network files let a later clone go on. ``--workers 2``
trains two networks at once, each in its own process pinned to one core with XLA
single-threaded (the fastest way to use a 2-core CPU, results/bench_ch6.md); the results
files are rewritten after every finished network.
"""

import argparse
import copy
import dataclasses
import hashlib
import json
import os
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from experiments import (
    ch6_plots,
    cli,
    command_line,
    common,
    interrupts,
    progress,
    result_files,
    workers,
)
from experiments.run_config import setting
from nnjax import (
    activations,
    checkpoint,
    conv,
    conv_backprop,
    convnet,
    data,
    ensemble,
    expand,
    optim,
    parallel,
    train,
    validate,
)


@dataclass(frozen=True)
class ConvConfig:
    """One network3-style training run (or ensemble), as docs/book.md lists it."""

    id: str = setting(help='the run id (docs/book.md), e.g. "6f"')
    convs: tuple[int, ...] = setting((),
        help="feature maps of each 5×5 conv layer (each followed by 2×2 max-pool and σ)")
    fc: tuple[int, ...] = setting((100,), help="fully connected hidden layers")
    activation: str = setting(
        "sigmoid", help="σ of conv and hidden layers: sigmoid | tanh | relu | linear")
    eta: float = setting(0.1, help="learning rate η")
    lmbda: float = setting(0.0, help="L2 regularisation λ")
    epochs: int = setting(60, help="passes over the training data")
    batch_size: int = setting(10, help="mini-batch size m")
    dropout: float = setting(0.0, help="p, dropped from the inputs of every FC and the softmax "
                                       "layer")
    dropout_mode: str = setting("network3",
        help="network3 (scale by 1−p at test) | inverted (scale by 1/(1−p) in training)")
    init: str = setting("network3"
                        , help="network3 (FC 1/n_out, conv 1/(F·25/4)) | default (1/n_in)")
    l2_scaling: str = setting("network3", help="network3 (decay ηλm/n per step) | network2 (ηλ/n)")
    shuffle: bool = setting(False, help="reshuffle every epoch (network3 keeps one fixed order)")
    expand: str = setting("none", help="none | shifts (the book's 250k) | shifts+rotate | "
                                       "shifts+elastic")
    expand_seed: int = setting(0, help="key of the one-time permutation of expanded data (and its "
                                       "distortions)")
    members: int = setting(1, help="ensemble size, voting by plurality (6l: 5)")
    ensemble: str = setting("auto",
        help="separate (members trained one by one) | vmapped (one program) | auto (GPU: vmapped)")
    seeds: int | None = setting(None,
        help="a fixed number of seeds (ensembles) for this row (None: the --seeds option)")
    train_size: int | None = setting(None, help="train on the first N training images (None: all "
                                                "50,000)")
    eval_size: int | None = setting(None, help="evaluate on the first N validation and test images "
                                               "(None: all)")
    gradient: str = setting("autodiff", help="autodiff (jax.grad) | backprop (nnjax.conv_backprop, "
                                             "no dropout)")
    conv_impl: str = setting("auto", help="auto | im2col | lax (nnjax.conv)")
    book: float | None = setting(None, help="the book's reported accuracy in percent, if any")
    note: str = setting("", help="what the book says")
    dataset: str = setting("mnist", help="the data: mnist | fashion-mnist | kmnist (set with "
                                         "--dataset)")

    def __post_init__(self):
        """Check every field before anything runs; errors name the field, expected and got."""
        validate.positive("eta", self.eta, "the learning rate η")
        validate.non_negative("lmbda", self.lmbda, "the regularisation parameter λ")
        validate.probability("dropout", self.dropout, "the dropout probability p")
        for field in ("epochs", "batch_size", "members"):
            validate.integer(field, getattr(self, field), 1)
        for field in ("train_size", "eval_size", "seeds"):
            if getattr(self, field) is not None:
                validate.integer(field, getattr(self, field),
                                 self.batch_size if field == "train_size" else 1)
        for field, choices in CHOICES.items():
            if getattr(self, field) not in choices:
                raise ValueError(f"ConvConfig {self.id}: {field} must be one of {choices}, got "
                                 f"{getattr(self, field)!r}")
        if self.gradient == "backprop" and self.dropout:
            raise ValueError(f"ConvConfig {self.id}: gradient='backprop' (nnjax.conv_backprop) has "
                             "no dropout rule; use gradient='autodiff'")
        convnet.build(self.arch(), init=self.init, dropout_mode=self.dropout_mode,
                      conv_impl=self.conv_impl)

    def arch(self) -> tuple:
        return convnet.network3_arch(self.convs, self.fc, self.activation, 10, self.dropout)


CHOICES = {
    "activation": tuple(n for n in activations.BY_NAME if n != "softmax"),
    "dropout_mode": ("network3", "inverted"),
    "init": ("network3", "default"), "l2_scaling": optim.SCALINGS,
    "expand": ("none", "shifts", "shifts+rotate", "shifts+elastic"),
    "gradient": ("autodiff", "backprop"), "conv_impl": ("auto",) + conv.IMPLS,
    "ensemble": ("auto", "separate", "vmapped"), "dataset": data.DATASETS,
}
CONV2 = dict(convs=(20, 40), activation="relu", eta=0.03, lmbda=0.1)
BIG = dict(convs=(20, 40), fc=(1000, 1000), activation="relu", eta=0.03, epochs=40, dropout=0.5,
           expand="shifts")
RUNS = [
    ConvConfig("6a", book=97.80, note="FC100 → softmax, sigmoid"),
    ConvConfig("6b", convs=(20,), book=98.78, note="conv20 → FC100, sigmoid"),
    ConvConfig("6c", convs=(20,), fc=(), note="conv20 → softmax (exercise); not reported"),
    ConvConfig("6d", convs=(20, 40), book=99.06, note="conv20 → conv40 → FC100, sigmoid"),
    ConvConfig("6e", convs=(20, 40), activation="tanh", note="6d with tanh (problem): 'very "
                                                             "similar'"),
    ConvConfig("6f", **CONV2, book=99.23, note="6d with ReLU, η 0.03, λ 0.1"),
    ConvConfig("6g", **CONV2, expand="shifts", book=99.37, note="6f on 250k expanded images"),
    ConvConfig("6h", **CONV2, fc=(300,), expand="shifts", book=99.46, note="6g with FC300"),
    ConvConfig("6h1000", **CONV2, fc=(1000,), expand="shifts", book=99.43, note="6g with FC1000"),
    ConvConfig("6i", **CONV2, fc=(100, 100), expand="shifts", book=99.43, note="6g with FC100 → "
                                                                               "FC100"),
    ConvConfig("6j", **CONV2, fc=(300, 300), expand="shifts", book=99.48, note="6g with FC300 → "
                                                                               "FC300"),
    ConvConfig("6j1000", **CONV2, fc=(1000, 1000), expand="shifts", book=99.47,
               note="6g with FC1000 → FC1000"),
    ConvConfig("6k", **BIG, book=99.60, note="two FC1000, dropout 0.5, 40 epochs, 250k"),
    ConvConfig("6l", **BIG, members=5, seeds=1, book=99.67, note="ensemble of 5 × 6k (its seeds "
                                                                 "0–4), plurality vote"),
]
IDS = [c.id for c in RUNS]  # the --only names, in the order of the results table
METRIC = "test_at_best_validation"


def quick(cfg: ConvConfig) -> ConvConfig:
    """The smoke version: one epoch on 200 training images, 500 evaluation images, ≤ 2 members."""
    return dataclasses.replace(cfg, epochs=1, train_size=200, eval_size=500,
                               members=min(cfg.members, 2))


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


def gradient(cfg: ConvConfig, net, n: int):
    """The mini-batch gradient of network3's log-likelihood for ``net`` (autodiff or by hand); L2 is
    `optimiser`'s."""
    if cfg.gradient == "autodiff":
        return convnet.make_grad(net.apply)
    return conv_backprop.make_grad(cfg.arch(), impl=cfg.conv_impl, dropout_mode=cfg.dropout_mode)


def optimiser(cfg: ConvConfig, n: int):
    """SGD with network3's L2 decay ηλm/n per step (or network2's ηλ/n) on n training images (ch6,
    ch3)."""
    return optim.sgd(cfg.eta, lmbda=cfg.lmbda, n=n, scaling=cfg.l2_scaling,
                     batch_size=cfg.batch_size)


def programs(cfg: ConvConfig, n: int, members: int):
    """The network and the jitted (epoch, outputs) programs; vmapped over members when members >
    1."""
    net = convnet.build(cfg.arch(), init=cfg.init, dropout_mode=cfg.dropout_mode,
                        conv_impl=cfg.conv_impl)
    opt = optimiser(cfg, n)
    args = (gradient(cfg, net, n), opt, cfg.batch_size, cfg.shuffle, cfg.dropout > 0)

    def outputs(params, x):
        return convnet.outputs(net.apply, params, x)
    epoch = train.make_epoch(*args, members=members > 1)
    return net, opt, epoch, jax.jit(jax.vmap(outputs, in_axes=(0, None)) if members > 1
                                    else lambda p, x: outputs(p, x)[None])


def percent(predictions, labels) -> float:
    """Accuracy in percent, from the exact count of correct predictions."""
    return result_files.percent(int(jnp.sum(predictions == labels)), len(labels))


def train_members(cfg: ConvConfig, datasets, seeds: list[int], verbose: bool, checkpoint_dir=None,
                  checkpoint_every: int = 1, resume: bool = False) -> dict:
    """Train one network per seed (one vmapped program when several), evaluating every epoch; its
    `result`.

    With ``checkpoint_dir`` the state (`BestEpoch`'s arrays included) is saved there every
    ``checkpoint_every`` epochs and after the last, and ``resume`` continues from the
    newest intact one, bit-identical; a finished run is read back without training.
    Ctrl-C raises `Stopped` with the result after the last finished epoch (None before one).
    """
    (x, y), validation, _ = datasets
    net, opt, program, outputs = programs(cfg, x.shape[0], len(seeds))
    k_init, k_train = jnp.stack([jnp.stack(jax.random.split(jax.random.key(s))) for s in seeds],
                                axis=1)
    params = ensemble.init_members(net.init, k_init, (28, 28, 1))
    if len(seeds) == 1:
        params, k_train = jax.tree_util.tree_map(lambda a: a[0], params), k_train[0]
    best = BestEpoch(cfg, datasets, seeds, outputs)
    state = train.State(params, jax.vmap(opt.init)(params) if len(seeds) > 1 else opt.init(params),
                        k_train, extra=best.arrays(params))
    pieces = [] if checkpoint_dir is None else [checkpoint.Checkpoints(
        checkpoint_dir, checkpoint_every, resume, config={**training_settings(cfg), "seeds": seeds},
        notes=best)]
    show = progress.progress_printer(f"{cfg.id} seed{'s' * (len(seeds) > 1)} "
                                     f"{','.join(map(str, seeds))}", cfg.epochs,
                                   len(validation[1])) if verbose else None
    try:
        train.fit(program, state, (x, y), epochs=cfg.epochs, pieces=pieces + [best],
                  on_epoch=show and (lambda r: show(
            {**r, "evaluation_accuracy": int(round(r["validation_accuracy"] * len(validation[
                1]) / 100))})))
    except train.Interrupted:
        raise Stopped(best.latest) from None
    return best.result()


class BestEpoch(train.Piece):
    """Chapter 6's bookkeeping: accuracies on validation and test every epoch, the
    best-validation epoch's errors, conv filters and predictions, the last epoch's
    predictions, wall time across resumes and the commits and machines that trained the run.

    Its arrays live in the state's ``extra`` (checkpointed); the rest is the checkpoint's
    JSON (`save`, `load`): ``{"history", "commits", "machines", "wall_s", "best"}``.
    """

    def __init__(self, cfg: ConvConfig, datasets, seeds: list[int], outputs):
        self.cfg, self.datasets, self.seeds, self.outputs = cfg, datasets, seeds, outputs
        self.ensemble = len(seeds) > 1
        self.hist = {"validation_accuracy": [], "test_accuracy": [], "seconds": []}
        if self.ensemble:
            self.hist.update({"member_validation_accuracy": [], "member_test_accuracy": [],
                              "mean_probability_validation_accuracy": [],
                              "mean_probability_test_accuracy": []})
        self.best, self.commits, self.wall_s, self.latest = {"best_validation": -1.0}, [], 0.0, None
        self.machines = []

    def arrays(self, params) -> dict:
        """The initial ``State.extra``: the filters and predictions kept at the best and the last
        epoch."""
        none = jnp.zeros((2, len(self.datasets[1][1])), jnp.int32)
        return {"filters": conv_weights(self.cfg, params, self.ensemble), "best_predictions": none,
                "last_predictions": none}

    def save(self) -> dict:
        return {"history": self.hist, "commits": self.commits, "machines": self.machines,
                "wall_s": self.wall_s, "best": self.best}

    def load(self, saved: dict) -> None:
        self.hist, self.commits, self.wall_s, self.best = (saved[k]
                                                           for k in ("history", "commits", "wall_s",
                                                                     "best"))
        self.machines = saved.get("machines", [])  # checkpoints before 2 Dec 2026 have none

    def start(self, run: train.Run) -> None:
        # λ is the run's: checkpoints written before L2 moved into the optimiser hold λ = 0
        lmbda = jnp.full_like(run.state.opt_state.hyperparams["lmbda"], self.cfg.lmbda)
        run.state = run.state.replace(
            opt_state=optim.set_hyperparams(run.state.opt_state, lmbda=lmbda))
        if int(run.state.epoch) < run.epochs:
            # the code and the machine that train the coming epochs
            self.commits = self.commits + [result_files.code_commit()]
            self.machines = self.machines + [result_files.machine()]
        # members split over several devices
        if self.ensemble and len(self.seeds) % jax.device_count() == 0:
            params, opt_state, key = parallel.shard_members((run.state.params, run.state.opt_state,
                                                             run.state.key))
            run.state = run.state.replace(params=params, opt_state=opt_state, key=key)
        self.extra = run.state.extra
        self.latest = self.result() if self.hist["test_accuracy"] else None
        # every epoch's training and evaluation, across resumes
        self.wall_start = time.perf_counter() - self.wall_s

    def measure(self, run: train.Run) -> None:
        _, validation, test = self.datasets
        pred_v, pred_t = evaluate_epoch(self.hist, self.outputs, run.state.params, validation, test,
                                        self.ensemble)
        yt = test[1]
        self.hist["seconds"].append(run.record["seconds"])
        extra = {**run.state.extra, "last_predictions": jnp.stack([pred_v,
                                                                   pred_t]).astype(jnp.int32)}
        val = run.record["validation_accuracy"] = self.hist["validation_accuracy"][-1]
        if val > self.best["best_validation"]:
            wrong = np.flatnonzero(np.asarray(pred_t != yt))
            self.best = {"best_validation_epoch": run.record["epoch"], "best_validation": val,
                         "errors": [[int(i), int(yt[i]), int(pred_t[i])] for i in wrong]}
            extra |= {"filters": conv_weights(self.cfg, run.state.params, self.ensemble),
                      "best_predictions": extra["last_predictions"]}
        run.state, self.extra = run.state.replace(extra=extra), extra
        self.wall_s = time.perf_counter() - self.wall_start

    def after(self, run: train.Run) -> None:
        self.latest = self.result()

    def result(self) -> dict:
        return result(self.hist, self.best, self.extra, self.seeds, self.wall_s, self.commits,
                      self.machines)


def conv_weights(cfg: ConvConfig, params, ensemble_run: bool) -> list:
    """The conv layers' weights (an ensemble's first member's), for the filter figures."""
    return [p["w"][0] if ensemble_run else p["w"] for spec, p in zip(cfg.arch(), params)
            if spec[0] == "conv"]


def evaluate_epoch(hist: dict, outputs, params, validation, test, ensemble_run: bool):
    """Append this epoch's accuracies to ``hist``; return the (combined) predictions on both
    sets."""
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


def result(hist: dict, best: dict, arrays: dict, seeds: list[int], wall_s: float,
           commits: list[str], machines: list[str]) -> dict:
    """A run's result from its history, best-validation epoch and `BestEpoch` arrays (see
    `train_members`).

    ``wall_s`` counts every training epoch, also those of earlier processes before a resume.
    "predictions" holds (validation, test) predictions at the best-validation and the last epoch.
    """
    at = {**best, "filters": [np.asarray(f) for f in arrays["filters"]],
          "predictions": {"best_validation_epoch": np.asarray(arrays["best_predictions"], np.uint8),
                          "last_epoch": np.asarray(arrays["last_predictions"], np.uint8)}}
    # each member on its own, as if trained alone: test at its best-validation epoch
    if len(seeds) > 1:
        member_val, member_test = np.array(hist["member_validation_accuracy"]), np.array(hist[
            "member_test_accuracy"])
        at["member_" + METRIC] = member_test[np.argmax(member_val, axis=0),
                                             np.arange(len(seeds))].tolist()
        at["mean_probability_" + METRIC] = hist["mean_probability_test_accuracy"][at[
            "best_validation_epoch"]]
    return {"seeds": seeds, METRIC: hist["test_accuracy"][at["best_validation_epoch"]], **at,
            "peak_test": max(hist["test_accuracy"]), "final_test": hist["test_accuracy"][-1],
            "epochs_done": len(hist["test_accuracy"]), "history": copy.deepcopy(hist),
            "wall_s": wall_s, "git_commits": list(dict.fromkeys(commits)),
            "machines": list(dict.fromkeys(machines))}


RUNS_ENV = "NNJAX_RUNS_DIR"


def default_runs_dir() -> Path:
    """Where full runs keep their checkpoints: $NNJAX_RUNS_DIR, else ~/.cache/nnjax/runs (outside
    the work tree)."""
    return Path(os.environ.get(RUNS_ENV) or Path.home() / ".cache" / "nnjax" / "runs")


def checkpoint_root(args) -> Path | None:
    """Where a command's networks keep their checkpoints: --checkpoint-dir, else (except under
    --quick) `default_runs_dir`. It is written back into ``args`` so that the Ctrl-C message
    (`interrupts.saving_on_interrupt`) names the folder to --resume from."""
    root = (Path(args.checkpoint_dir) if args.checkpoint_dir
            else None if args.quick else default_runs_dir())
    args.checkpoint_dir = root and str(root)
    return root


def vmapped(cfg: ConvConfig) -> bool:
    """Whether an ensemble trains as one vmapped program ("auto": on an accelerator, not on a
    CPU)."""
    return cfg.members > 1 and (cfg.ensemble == "vmapped" or cfg.ensemble == "auto"
                                and jax.default_backend() != "cpu")


@dataclass(frozen=True)
class Job:
    """One training program: a network (or a vmapped ensemble) of ``cfg`` from ``seeds``,
    checkpointed in ``directory`` while it trains and kept in the file ``stored`` once finished."""

    cfg: ConvConfig
    seeds: tuple[int, ...]
    directory: Path | None
    stored: Path | None = None


def jobs_of(cfg: ConvConfig, seed: int, root: Path | None, store: Path | None = None) -> list[Job]:
    """The programs behind seed ``seed`` of a row: one network, or an ensemble's members.

    Checkpoint folders (under ``root``) and stored results (under ``store``) are named by a
    hash of the settings that decide training (not the row id, the epoch count or the
    ensemble), so a separately trained ensemble member and the single-network run of the
    same seed are one job, trained once.
    """
    def job(c: ConvConfig, seeds: tuple[int, ...]) -> Job:
        name = "seed" + "-".join(map(str, seeds))
        return Job(c, seeds, root and run_dir(root, c, name), store and stored_file(store, c, name))

    members = tuple(cfg.members * seed + i for i in range(cfg.members))
    if cfg.members == 1 or vmapped(cfg):
        return [job(cfg, members)]
    return [job(dataclasses.replace(cfg, members=1), (m,)) for m in members]


def training_settings(cfg: ConvConfig) -> dict:
    """The fields that decide how a network trains (not its row id, epoch count, seeds or ensemble
    mode).

    MNIST runs leave the data set out, so their checkpoint folders keep the names they had
    before the data set could be chosen."""
    return {k: v for k, v in dataclasses.asdict(cfg).items()
            if k not in ("id", "book", "note", "epochs", "ensemble", "seeds")
            and (k, v) != ("dataset", "mnist")}


def settings_hash(cfg: ConvConfig) -> str:
    """12 hex digits of the SHA-256 of `training_settings`: the name of a network's folders."""
    return hashlib.sha256(json.dumps(training_settings(cfg),
                                     sort_keys=True).encode()).hexdigest()[:12]


def run_dir(root: Path, cfg: ConvConfig, name: str) -> Path:
    """``root``/ch6/<`settings_hash`>/``name``: where a network's checkpoints go while it trains."""
    return Path(root) / "ch6" / settings_hash(cfg) / name


STORE = "ch6_networks"


def stored_file(store: Path, cfg: ConvConfig, name: str) -> Path:
    """``store``/<`settings_hash`>/``name``_<epochs>epochs.npz: a finished network's `result`.

    These files live with the results (DIR/ch6_networks), not with the checkpoints: they
    are small (predictions and conv filters, no FC weights), so they can be committed, and
    every row, the 6l vote included, can be rebuilt from them on any machine, any day."""
    return Path(store) / settings_hash(cfg) / f"{name}_{cfg.epochs}epochs.npz"


def store_result(path: Path, r: dict) -> None:
    """Write a finished `result` to ``path`` (atomically): its arrays, and the rest as JSON."""
    arrays = {f"filters_{i}": np.asarray(f) for i, f in enumerate(r["filters"])}
    for when, p in r["predictions"].items():
        arrays[f"validation_{when}"], arrays[f"test_{when}"] = p[0], p[1]
    scalars = {k: v for k, v in r.items() if k not in ("filters", "predictions")}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, result=np.array(json.dumps(scalars)), **arrays)
    os.replace(tmp, path)


def load_result(path: Path) -> dict:
    """The `result` that `store_result` wrote to ``path``; a damaged file is a
    `checkpoint.CheckpointError`."""
    try:
        with np.load(path) as f:
            r = json.loads(str(f["result"]))
            r["filters"] = [f[f"filters_{i}"] for i in range(sum(k.startswith("filters_")
                                                                 for k in f.files))]
            r["predictions"] = {when: np.stack([f[f"validation_{when}"], f[f"test_{when}"]])
                                for when in ("best_validation_epoch", "last_epoch")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise checkpoint.CheckpointError(f"stored network {path} is damaged ({e}): delete it, and "
                                         "--resume rebuilds it from the network's checkpoints or "
                                         "trains it again") from e
    return r


def finished(job: Job) -> bool:
    """Whether the job's result is stored, or its newest checkpoint holds all its epochs."""
    return ((job.stored is not None and job.stored.exists())
            or (job.directory is not None and checkpoint.saved_epochs(
                job.directory) == job.cfg.epochs))


def train_job(job: Job, datasets, verbose: bool, checkpoint_every: int = 1,
              resume: bool = False) -> dict:
    """Train one job, or with ``resume`` read it back when finished; its last `result`, stored
    in ``job.stored`` once all epochs are done. Ctrl-C: `Stopped` with the result so far."""
    if resume and job.stored is not None and job.stored.exists():
        return load_result(job.stored)
    try:
        r = train_members(job.cfg, datasets, list(job.seeds), verbose, job.directory,
                          checkpoint_every, resume)
    except KeyboardInterrupt as stop:
        raise Stopped(getattr(stop, "result", None)) from None
    if job.stored is not None and r["epochs_done"] == job.cfg.epochs:
        store_result(job.stored, r)
    return r


class Stopped(KeyboardInterrupt):
    """Ctrl-C inside a job; ``result`` is its result after the last finished epoch (None before
    one)."""

    def __init__(self, result: dict | None):
        super().__init__("interrupted")
        self.result = result


def run(cfg: ConvConfig, datasets, seeds: list[int], verbose: bool = True, root: Path | None = None,
        checkpoint_every: int = 1, resume: bool = False, finished_only: bool = False,
        store: Path | None = None) -> tuple[dict | None, dict]:
    """The results record of one row, and its arrays (`record`).

    Each seed's jobs (`jobs_of`) train in turn, checkpointed under ``root`` and stored
    under ``store``; ``finished_only`` trains nothing and uses the seeds whose jobs have
    all finished (None when there are none yet). On Ctrl-C, `common.Interrupted` carries
    the record of the finished seeds and epochs.
    """
    per_seed = []
    for s in seeds:
        jobs = jobs_of(cfg, s, root, store)
        if finished_only and not all(map(finished, jobs)):
            continue
        results = []
        try:
            # a checkpointed job finished by an earlier row of this command (6k's for 6l) is read
            # back
            for job in jobs:
                again = resume or finished_only or (root is not None and finished(job))
                results.append(train_job(job, datasets, verbose, checkpoint_every, again))
        except Stopped as stop:
            done = per_seed + ([{"seed": s, **stop.result}] if stop.result and len(jobs) == 1
                               else [])
            raise common.Interrupted([record(cfg, done, datasets, interrupted=True)[0]] if done
                                     else []) from None
        networks = {"networks": [str(j.stored.relative_to(store.parent))
                                 for j in jobs]} if store else {}
        per_seed.append({"seed": s, **(results[0] if len(jobs) == 1 else vote(results, datasets)),
                         **networks})
    return record(cfg, per_seed, datasets) if per_seed else (None, {})


def vote(members: list[dict], datasets) -> dict:
    """A separately trained ensemble's result: the plurality vote of its members' stored
    predictions.

    The headline is the vote of each member's predictions at its own best-validation epoch
    (each member as the book would report it); "final_test" votes at the last epochs.
    """
    (_, _), (_, yv), (_, yt) = datasets
    out = {"seeds": [m["seeds"][0] for m in members], "member_"
           + METRIC: [m[METRIC] for m in members], "filters": members[0]["filters"],
           "wall_s": sum(m["wall_s"] for m in members),
           "epochs_done": min(m["epochs_done"] for m in members),
           "git_commits": sorted({c for m in members for c in m["git_commits"]}),
           "machines": sorted({c for m in members for c in m.get("machines", [])}),
           "history": {f"member_{k}": [list(v) for v in zip(*(m["history"][k] for m in members))]
                       for k in ("validation_accuracy", "test_accuracy", "seconds")}}
    for when in ("best_validation_epoch", "last_epoch"):
        stacked = np.stack([m["predictions"][when] for m in members])  # (members, 2, n)
        pred_v, pred_t = (np.asarray(ensemble.plurality_vote(jnp.asarray(stacked[:, i])))
                          for i in (0, 1))
        if when == "best_validation_epoch":
            out |= {METRIC: percent(pred_t, yt), "best_validation": percent(pred_v, yv),
                    "errors": [[int(i), int(yt[i]), int(pred_t[i])]
                               for i in np.flatnonzero(pred_t != np.asarray(yt))]}
        else:
            out["final_test"] = percent(pred_t, yt)
    return out


def record(cfg: ConvConfig, per_seed: list[dict], datasets, **extra) -> tuple[dict, dict]:
    """The results record of per-seed results, and its arrays: the best run's conv filters."""
    arrays = {"filters": max(per_seed, key=lambda r: r[METRIC])["filters"]}
    per_seed = [{k: v for k, v in r.items() if k not in ("filters", "predictions")}
                for r in per_seed]
    seconds = [t for r in per_seed for t in r["history"].get("seconds", [])]
    seconds += [t for r in per_seed for row in r["history"].get("member_seconds", []) for t in row]
    extra |= {"train_images": int(datasets[0][0].shape[0]),
              "seconds_per_epoch": float(np.median(seconds or [0.0])),
              "ensemble": "vmapped" if vmapped(cfg) else "separate" if cfg.members > 1 else "none"}
    return result_files.make_record(cfg, per_seed, metric=METRIC, **extra), arrays


def save_row(out: Path, rec: dict, arrays: dict) -> None:
    """A row's arrays beside its JSON record: DIR/ch6_<id>_filters.npz, the conv layers of its best
    run. (Each network's predictions are in its stored result, `stored_file`, named in the record's
    per-seed "networks".)"""
    out.mkdir(parents=True, exist_ok=True)
    if arrays["filters"]:
        np.savez(out / f"ch6_{rec['id']}_filters.npz", *arrays["filters"])


def cached_data(mnist: data.MNIST):
    """`prepare_data` that reuses the data sets of configs with the same data settings."""
    made = {}

    def get(cfg: ConvConfig):
        key = (cfg.expand, cfg.expand_seed, cfg.train_size, cfg.eval_size)
        if key not in made:
            made[key] = prepare_data(cfg, mnist)
        return made[key]
    return get


def main(argv=None) -> list[dict]:
    p = command_line.add_run_options(command_line.base_parser(__doc__.splitlines()[0], IDS),
                                     ConvConfig)
    p.add_argument("--no-plots", action="store_true", help="do not draw the figures")
    p.set_defaults(gradient="autodiff")
    next(a for a in p._actions if a.dest == "gradient").help = (
        "gradient method: jax.grad (autodiff, the default) or nnjax.conv_backprop by hand "
        "(backprop; no dropout)")
    p.add_argument("--seed-list", default=None, metavar="S,...",
                   help="run exactly these seeds (e.g. 3,4) instead of --seeds N's 0..N-1: a long "
                        "row in pieces")
    p.add_argument("--workers", type=command_line.positive_int, default=1, metavar="W",
                   help="train W networks at once, each in its own process pinned to a core (2 on "
                        "a 2-core CPU)")
    # a worker's one job (JSON), see run_workers
    p.add_argument("--job", default=None, help=argparse.SUPPRESS)
    args = command_line.parse_args(p, argv, default_checkpoints=True)
    if args.job:
        return run_job(json.loads(args.job), args)
    ids = command_line.parse_only(args.only, IDS)
    # jobs run in the order --only names them
    order = [i.strip() for i in (args.only or ",".join(IDS)).split(",")]
    configs = command_line.prepare(p, args, sorted((c for c in RUNS if c.id in ids),
                                                   key=lambda c: order.index(c.id)), quick)
    seeds = parse_seed_list(p, args.seed_list) if args.seed_list else list(range(1 if args.quick
                                                                                 else args.seeds))
    root = checkpoint_root(args)
    store = Path(args.out) / STORE
    if root and not args.resume:
        refuse_existing(p, [j for c in configs for s in seeds_of(c, seeds)
                            for j in jobs_of(c, s, root, store)])
    datasets = cached_data(data.load(args.dataset, args.data_dir))
    options = dict(root=root, store=store, checkpoint_every=args.checkpoint_every,
                   resume=args.resume)
    if args.workers > 1:
        records = run_workers(configs, seeds, datasets, args, options)
    else:
        with interrupts.saving_on_interrupt(args, "ch6", IDS) as records:
            for cfg in configs:
                rec, arrays = run(cfg, datasets(cfg), seeds_of(cfg, seeds), not args.quiet,
                                  **options)
                records.append(rec)
                write(args, records, [(rec, arrays)])  # after every row: finished rows survive
        print(result_files.markdown_table(records))
    if records and not args.no_plots:
        for png in ch6_plots.plot_all(Path(args.out) / "ch6.json", data_dir=args.data_dir):
            print(f"wrote {png}")
    return records


def seeds_of(cfg: ConvConfig, seeds: list[int]) -> list[int]:
    """The seeds a row runs: its own fixed number (6l: one ensemble, 6k's seeds 0–4), else the
    command's."""
    return seeds if cfg.seeds is None else seeds[:cfg.seeds]


def parse_seed_list(p, text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        p.error(f"--seed-list {text!r}: expected distinct non-negative integers, e.g. 3,4")
    return seeds


def refuse_existing(p, jobs: list[Job]) -> None:
    """Without --resume, stop before training if a job already has checkpoints or a stored result
    (one line, what to do)."""
    started = [j for j in jobs if checkpoint.saved_epochs(j.directory)
               or (j.stored and j.stored.exists())]
    if started:
        j = started[0]
        where = j.stored if j.stored and j.stored.exists() else j.directory
        p.error(f"{len(started)} run(s) already have checkpoints or a stored result (e.g. "
                f"{j.cfg.id} seed {j.seeds[0]} in {where}): add --resume to continue or reuse "
                "them, or choose another --checkpoint-dir and --out to start afresh")


def write(args, records: list[dict], rows: list[tuple[dict, dict]]) -> Path:
    """Save ``rows``' arrays and the records (merged with saved ones under --merge) to
    DIR/ch6.json."""
    for rec, arrays in rows:
        save_row(Path(args.out), rec, arrays)
    saved = result_files.merge_saved(args.out, "ch6", records, IDS) if args.merge else records
    path = result_files.write_results(args.out, "ch6", saved)
    print(f"wrote {path}", flush=True)
    return path


def run_workers(configs, seeds, datasets, args, options) -> list[dict]:
    """Train every unfinished job in ``args.workers`` pinned processes; rewrite the results after
    each one ends."""
    jobs = {}
    for j in (j for c in configs for s in seeds_of(c, seeds)
              for j in jobs_of(c, s, options["root"], options["store"])):
        # an ensemble member that is also a listed single run keeps that run's name
        jobs.setdefault(j.stored, j)
    jobs = list(jobs.values())
    todo = [j for j in jobs if not finished(j)]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} networks already trained; {len(todo)} to train "
          f"with {args.workers} workers", flush=True)
    commands = [["-m", "experiments.ch6", "--job",
                 json.dumps({"config": dataclasses.asdict(j.cfg), "seeds": j.seeds,
                                                               "directory": str(j.directory),
                                                               "stored": str(j.stored)}),
                 "--checkpoint-every", str(args.checkpoint_every)] + ["--quiet"] * args.quiet
                + (["--data-dir", args.data_dir] if args.data_dir else []) for j in todo]

    def assemble(*_) -> list[dict]:
        rows = [run(c, datasets(c), seeds_of(c, seeds), False, **{**options, "finished_only": True})
                for c in configs]
        rows = [r for r in rows if r[0] is not None]
        if rows:
            write(args, [rec for rec, _ in rows], rows)
        return [rec for rec, _ in rows]

    try:
        status = workers.run_pinned(commands, args.workers, assemble)
    except KeyboardInterrupt:
        assemble()
        print("interrupted: finished networks are saved; rerun the same command with --resume to "
              "continue", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    records = assemble()
    failed = [j for j, st in zip(todo, status) if st]
    if failed:
        raise SystemExit(f"error: {len(failed)} network(s) failed (first: {failed[0].cfg.id} seeds "
                         f"{failed[0].seeds}); their messages are above; rerun with --resume to "
                         "retry them")
    print(result_files.markdown_table(records) if records else "no row has all its networks "
                                                               "trained yet")
    return records


def run_job(spec: dict, args) -> dict:
    """A worker process: train one job to its end in its checkpoint directory (results go to the
    parent)."""
    fields = {f.name: f.type for f in dataclasses.fields(ConvConfig)}
    cfg = ConvConfig(**{k: tuple(v) if isinstance(v, list) and "tuple" in str(fields[k]) else v
                        for k, v in spec["config"].items()})
    job = Job(cfg, tuple(spec["seeds"]), Path(spec["directory"]), Path(spec["stored"]))
    try:
        return train_job(job, prepare_data(cfg, data.load(cfg.dataset, args.data_dir)),
                         not args.quiet, args.checkpoint_every, resume=True)
    except Stopped:
        raise SystemExit(130) from None


if __name__ == "__main__":
    cli.run(main)
