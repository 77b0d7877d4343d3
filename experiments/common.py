"""What every chapter's experiment script shares: configs, runs over seeds, results files.

An experiment is a list of `RunConfig`s, one per run id (docs/book.md lists them all). `run_seeds` trains one
config for several seeds and `make_record` turns the outcome into the results record
all chapters use:

    {"id", "book", "metric", "best", "mean", "std", "per_seed", "config",
     "wall_s", "device", "jax_version", ...}

with accuracies in percent. `write_results` saves ``DIR/chN.json`` and a Markdown table
``DIR/chN.md`` comparing the book with our numbers. Plotting reads these files and
never retrains.
"""

import argparse
import ast
import contextlib
import dataclasses
import inspect
import io
import json
import math
import os
import platform
import subprocess
import sys
import textwrap
import time
import tokenize
import typing
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np

from experiments import cli
from nnjax import (activations, autodiff, backprop, checkpoint, costs, data, guard, init, monitor, network, optim, train,
                   validate)
from nnjax.network import Network


@dataclass(frozen=True)
class RunConfig:
    """One training run of a fully connected network, as the book specifies it."""

    id: str  # the run id (docs/book.md), e.g. "1a"
    sizes: tuple[int, ...]  # neurons per layer, input first
    eta: float  # learning rate η
    epochs: int  # passes over the training data
    batch_size: int = 10  # mini-batch size m
    init: str = "large"  # initialiser: large | default | network3
    activation: str = "sigmoid"  # hidden-layer activation
    output: str = "sigmoid"  # output-layer activation
    cost: str = "quadratic"  # quadratic | cross_entropy | log_likelihood
    train_size: int | None = None  # train on the first N training images (None: all 50,000)
    evaluate_on: str = "test"  # test | validation
    gradient: str = "backprop"  # backprop (hand-derived, BP1–BP4) | autodiff (jax.grad)
    book: float | None = None  # the book's reported accuracy in percent, if any
    note: str = ""  # what the book says, for rows without a single number
    # chapter 3 (network2.py) options; the defaults are chapter 1's plain SGD
    lmbda: float = 0.0  # regularisation parameter λ (L2 unless l1); scaled by the training-set size n
    l1: bool = False  # L1 instead of L2: w → w − (ηλ/n) sgn(w) − η∇C
    momentum: float = 0.0  # momentum coefficient μ: v → μv − η∇C, w → w + v
    eval_size: int | None = None  # evaluate on the first N images of the evaluation set (None: all)
    monitor_training: bool = False  # also record training accuracy and cost after each epoch
    stop_after: int | None = None  # early stopping: end after this many epochs without a new best
    halve_eta_after: int | None = None  # η schedule: halve η after this many epochs without a new best
    seeds: int | None = None  # a fixed number of seeds for this run (None: the --seeds option)
    nan_guard: bool = True  # stop at the first NaN/Inf; False runs on with them, as network2.py does
    dataset: str = "mnist"  # the data: mnist | fashion-mnist | kmnist (set with --dataset)

    def __post_init__(self):
        """Check every field before anything runs; errors name the field, expected and got."""
        if not (isinstance(self.id, str) and self.id):
            raise ValueError(f"RunConfig id must be a non-empty string, got {self.id!r}")
        validate.positive("eta", self.eta, "the learning rate η")
        validate.integer("epochs", self.epochs, 1)
        validate.integer("batch_size", self.batch_size, 1)
        if self.train_size is not None:
            validate.integer("train_size", self.train_size, self.batch_size)
        validate.non_negative("lmbda", self.lmbda, "the regularisation parameter λ")
        validate.probability("momentum", self.momentum, "the momentum coefficient μ")
        for field in ("eval_size", "stop_after", "halve_eta_after", "seeds"):
            if getattr(self, field) is not None:
                validate.integer(field, getattr(self, field), 1)
        for field in ("l1", "monitor_training", "nan_guard"):
            if not isinstance(getattr(self, field), bool):
                raise TypeError(f"RunConfig {self.id}: {field} must be True or False, got {getattr(self, field)!r}")
        for field, choices in (("init", init.BY_NAME), ("activation", activations.BY_NAME),
                               ("output", activations.BY_NAME), ("cost", costs.BY_NAME),
                               ("evaluate_on", ("test", "validation")), ("gradient", GRADIENTS)):
            if not (isinstance(getattr(self, field), str) and getattr(self, field) in choices):
                raise ValueError(f"RunConfig {self.id}: {field} must be one of {sorted(choices)}, "
                                 f"got {getattr(self, field)!r}")
        if self.dataset not in data.DATASETS:
            raise ValueError(f"RunConfig {self.id}: dataset must be one of {list(data.DATASETS)}, got {self.dataset!r}")
        self.network()  # sizes, and the pairing of output layer and cost

    def network(self) -> Network:
        return Network(
            self.sizes,
            activations.get(self.activation),
            activations.get(self.output),
            costs.get(self.cost),
        )


GRADIENTS = ("backprop", "autodiff")


def override(cfg, assignments: Sequence[str]):
    """``cfg`` with ``--set FIELD=VALUE`` overrides applied, each parsed by the field's type.

    Works for any config dataclass. Unknown fields, unparsable values and impossible
    settings raise ValueError naming the field. Tuples are comma-separated
    (``sizes=784,100,10``; ``convs=`` is the empty tuple); ``none`` clears an optional field.
    """
    fields = {f.name: f.type for f in dataclasses.fields(cfg)}
    changes = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep:
            raise ValueError(f"--set {assignment!r}: expected FIELD=VALUE, e.g. eta=0.5")
        if name not in fields:
            raise ValueError(f"--set {name}: unknown config field; the fields are {sorted(fields)}")
        kind = fields[name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(args) == 1 and type(None) in typing.get_args(kind):  # X | None
            if text.lower() == "none":
                changes[name] = None
                continue
            kind = args[0]
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError(f"--set {name}={text}: expected true or false")
            changes[name] = text.lower() == "true"
            continue
        sizes = typing.get_origin(kind) is tuple
        try:
            if sizes:
                changes[name] = tuple(int(v) for v in text.split(",")) if text else ()
            else:
                changes[name] = kind(text)
        except ValueError:
            expected = "comma-separated integers" if sizes else f"a value of type {kind.__name__}"
            raise ValueError(f"--set {name}={text}: expected {expected}") from None
    return dataclasses.replace(cfg, **changes)


def field_help(cls: type) -> dict[str, str]:
    """Each field of a config dataclass with the comment that ends its line in the source.

    The comments beside the fields are the one description of each; ``--help`` shows them
    (`fields_epilog`). A field whose value spans lines takes the first comment among them.
    """
    source = textwrap.dedent(inspect.getsource(cls))
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments.setdefault(tok.start[0], tok.string.lstrip("#").strip())
    body = ast.parse(source).body[0].body
    return {node.target.id: next((comments[i] for i in range(node.lineno, node.end_lineno + 1) if i in comments), "")
            for node in body if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}


def type_name(kind) -> str:
    return kind.__name__ if type(kind) is type else str(kind)


def fields_epilog(cls: type) -> str:
    """``--help``'s list of the fields ``--set`` can change, one "FIELD (type, default): meaning" each."""
    meaning = field_help(cls)
    lines = [f"{cls.__name__} fields, changed with --set FIELD=VALUE (a run may set its own value instead of "
             "the default; tuples are comma-separated, e.g. 784,100,10; none clears an optional field; "
             "booleans are true or false):"]
    for f in dataclasses.fields(cls):
        default = "set per run" if f.default is dataclasses.MISSING else f"default {f.default!r}"
        lines.append(f"  {f.name} ({type_name(f.type)}, {default}): {meaning[f.name]}")
    return "\n".join(lines)


def gradient_fn(net: Network, method: str):
    """The mini-batch gradient by the chosen method (both have the same signature)."""
    if method == "backprop":
        return backprop.make_grad(net)
    if method == "autodiff":
        return autodiff.make_grad(net)
    raise ValueError(f"unknown gradient method {method!r}; choose one of {GRADIENTS}")


def environment() -> dict[str, Any]:
    """Where a result was computed: device, versions, machine."""
    dev = jax.devices()[0]
    return {
        "device": dev.platform if dev.device_kind in ("", dev.platform) else f"{dev.platform}: {dev.device_kind}",
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "git_commit": git_commit(),
    }



def git_commit() -> str:
    """The commit of the code that runs (with "-dirty" when tracked files differ from it), or "unknown"."""
    top = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=top, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=top,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + "-dirty" * bool(dirty.stdout.strip())


def percent(correct: int, total: int) -> float:
    return 100.0 * correct / total


def summary(values: Sequence[float | None]) -> dict[str, float | None]:
    """best, mean and (population) std of per-seed results in percent; a seed without a
    value (diverged before its first epoch ended) is left out, and with none all are None."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if not v.size:
        return {"best": None, "mean": None, "std": None}
    return {"best": float(v.max()), "mean": float(v.mean()), "std": float(v.std())}


def mean_of(values: Sequence[float | None]) -> float | None:
    """The mean of the values that are there (None for none), e.g. the final accuracies of seeds."""
    return summary(values)["mean"]


def progress_printer(label: str, total_epochs: int, n_eval: int) -> Callable[[dict], None]:
    """A per-epoch line in the book's style with elapsed time and ETA (also after a resume)."""
    start, first = time.perf_counter(), []

    def show(r: dict) -> None:
        elapsed = time.perf_counter() - start
        first[:] = first or [r["epoch"]]  # a resumed run's first epoch here is not 0
        eta_s = elapsed / (r["epoch"] + 1 - first[0]) * (total_epochs - r["epoch"] - 1)
        acc = r.get("evaluation_accuracy")
        if isinstance(acc, list):  # the members of a sweep
            acc = f"best {max(acc)} / {n_eval} of {len(acc)} members"
        else:
            acc = "complete" if acc is None else f"{acc} / {n_eval}"
        print(f"[{label}] Epoch {r['epoch']}: {acc}  ({r['seconds']:.2f} s; elapsed {elapsed:.1f} s, ETA {eta_s:.1f} s)",
              flush=True)

    return show


def select_data(mnist: data.MNIST, cfg: RunConfig):
    """(training, evaluation) pairs for a config: first N training images, (first N of) test or validation."""
    tr = mnist.training
    n = cfg.train_size or tr.x.shape[0]
    ev = {"test": mnist.test, "validation": mnist.validation}[cfg.evaluate_on]
    m = cfg.eval_size or ev.x.shape[0]
    return (tr.x[:n], tr.y[:n]), (ev.x[:m], ev.y[:m])


def optimizer_for(cfg: RunConfig, n: int):
    """The config's update rule for a training set of n images: plain SGD, or with L2/L1 and momentum."""
    if cfg.lmbda == 0 and not cfg.l1 and cfg.momentum == 0:
        return optim.sgd(cfg.eta)
    return optim.sgd(cfg.eta, lmbda=cfg.lmbda, n=n, momentum=cfg.momentum, l1=cfg.l1)


def penalty_for(cfg: RunConfig):
    """The regularisation term ``(params, λ, size)`` network2.py adds to a reported cost, or None without one."""
    return None if cfg.lmbda == 0 and not cfg.l1 else optim.l1_penalty if cfg.l1 else optim.l2_penalty


def pieces_for(cfg: RunConfig, net: Network, evaluation, *, monitor_training: bool = False, members: bool = False,
               checkpoint_dir=None, checkpoint_every: int = 1, resume: bool = False, pin=None) -> list:
    """`nnjax.train.fit`'s pieces for a config: evaluation (with network2's cost term), the
    config's NaN guard, early stopping and η schedule (not for members: a sweep), and
    checkpoints in ``checkpoint_dir``."""
    pieces = [monitor.Evaluate(partial(network.evaluate, net=net), evaluation, monitor_training or cfg.monitor_training,
                               penalty_for(cfg), None if members else cfg.lmbda, members)]
    if not members:
        pieces += [guard.Guard()] if cfg.nan_guard else []
        pieces += [monitor.EarlyStopping(cfg.stop_after)] if cfg.stop_after is not None else []
        pieces += [monitor.EtaSchedule(cfg.halve_eta_after)] if cfg.halve_eta_after is not None else []
    if checkpoint_dir is not None:
        pieces.append(checkpoint.Checkpoints(checkpoint_dir, checkpoint_every, resume, pin))
    return pieces


def run_seeds(cfg: RunConfig, mnist: data.MNIST, seeds: Sequence[int], *, verbose: bool = True,
              optimizer=None, monitor_training: bool = False, checkpoint_dir: str | os.PathLike | None = None,
              checkpoint_every: int = 1, resume: bool = False) -> list[dict]:
    """Train ``cfg`` once per seed; return one dict per seed with its history.

    The seed s gives ``jax.random.key(s)``, split into the initialisation and training keys.
    ``optimizer`` defaults to `optimizer_for`. With ``checkpoint_dir``, seed s checkpoints
    into ``checkpoint_dir/<id>/seed<s>`` and ``resume`` continues there (a resumed seed's
    wall time adds the training seconds of the earlier epochs). A seed stopped by the NaN
    guard is a result: its entry holds the finished epochs and ``"diverged"``.
    """
    net = cfg.network()
    training, evaluation = select_data(mnist, cfg)
    training = network.check_data(training, net, f"{cfg.id} training data")
    evaluation = network.check_data(evaluation, net, f"{cfg.id} evaluation data")
    pinned = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("book", "note", "epochs", "seeds")}
    sizes = {"n_train": len(training[1]), "n_eval": len(evaluation[1])}
    opt = optimizer or optimizer_for(cfg, len(training[1]))
    program = train.make_epoch(gradient_fn(net, cfg.gradient), opt, cfg.batch_size)
    out = []
    for s in seeds:
        k_init, k_train = jax.random.split(jax.random.key(s))
        params = init.init_params(k_init, net.sizes, cfg.init)
        show = progress_printer(f"{cfg.id} seed {s}", cfg.epochs, len(evaluation[1])) if verbose else None
        start = time.perf_counter()
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / cfg.id / f"seed{s}"
        before = resumed_epochs(ckpt) if resume else 0
        pieces = pieces_for(cfg, net, evaluation, monitor_training=monitor_training, checkpoint_dir=ckpt,
                            checkpoint_every=checkpoint_every, resume=resume, pin=pinned | {"seed": s})
        try:
            _, hist = train.fit(program, train.State(params, opt.init(params), k_train, extra=monitor.counters()),
                                training, epochs=cfg.epochs, pieces=pieces, on_epoch=show)
        except train.Interrupted as stop:
            if stop.history.get("epoch"):
                out.append(seed_result(s, stop.history, wall_time(start, stop.history, before), **sizes)
                           | {"epochs_done": len(stop.history["epoch"])})
            raise Interrupted([make_record(cfg, out, interrupted=True)] if out else []) from None
        except guard.NonFiniteError as stop:
            out.append(seed_result(s, stop.history, wall_time(start, stop.history, before), **sizes)
                       | {"diverged": {"epoch": stop.epoch, "step": stop.step, "message": str(stop)}})
            if verbose:
                print(f"[{cfg.id} seed {s}] diverged: {stop}", flush=True)
            continue
        resumed = {"resumed_after": before} if before else {}
        out.append(seed_result(s, hist, wall_time(start, hist, before), **sizes) | resumed)
    return out


def resumed_epochs(ckpt: Path | None) -> int:
    """How many epochs the newest checkpoint in ``ckpt`` holds (0 without one): where a resume starts."""
    found = checkpoint.list_checkpoints(ckpt) if ckpt is not None else []
    return int(found[-1].stem.split("-")[1]) if found else 0


def wall_time(start: float, hist: dict, before: int) -> float:
    """Seconds since ``start``, plus the training seconds of the ``before`` epochs a resumed run
    had finished in earlier processes (their evaluation time is not recorded)."""
    return time.perf_counter() - start + sum(hist.get("seconds", [])[:before])


def seed_result(seed: int, hist: dict, wall_s: float, n_train: int, n_eval: int) -> dict:
    """One seed's entry of a record: its history and the accuracies in percent (peak and
    final are None when no epoch finished, as for a run that diverged in its first)."""
    acc = [percent(c, n_eval) for c in hist.get("evaluation_accuracy", [])]
    return {"seed": seed, "peak": max(acc, default=None), "peak_epoch": int(np.argmax(acc)) if acc else None,
            "final": acc[-1] if acc else None, "accuracy": acc, "history": hist, "wall_s": wall_s,
            "n_train": n_train, "n_eval": n_eval}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``records`` are the results records of its finished seeds and
    epochs, marked ``"interrupted": true`` (none if no epoch had finished)."""

    def __init__(self, records: list[dict]):
        super().__init__("interrupted")
        self.records = records


class Results(list):
    """A script's list of finished records; each record added is stamped with what the
    command changed from the book's settings (`command_marks`), so that every file
    written from it says so."""

    def __init__(self, marks: dict):
        super().__init__()
        self.marks = marks

    def append(self, record: dict) -> None:
        super().append(record | self.marks)

    def extend(self, records) -> None:
        super().extend(r | self.marks for r in records)

    def __iadd__(self, records):
        self.extend(records)
        return self


def command_marks(args: argparse.Namespace) -> dict:
    """What a record must say about the command that made it: ``"quick"`` (a smoke run) and
    ``"modified"`` (the ``--set`` assignments); empty at the book's settings."""
    marks = {"quick": True} if getattr(args, "quick", False) else {}
    return marks | ({"modified": list(args.set)} if getattr(args, "set", None) else {})


@contextlib.contextmanager
def saving_on_interrupt(args: argparse.Namespace, chapter: str, ids: Sequence[str]):
    """Collect a script's finished records in the `Results` list this yields, and never lose them.

    On Ctrl-C, write them and the interrupted run's finished epochs (`Interrupted`) to
    DIR/chapter.json, say in one line what was saved and how to continue, and exit with
    status 130. On any other exception, write the finished records, say where, and let
    the exception go on.
    """
    records = Results(command_marks(args))
    try:
        yield records
    except KeyboardInterrupt as stop:
        partial = [r | records.marks for r in stop.records] if isinstance(stop, Interrupted) else []
        what = f"{len(records)} finished record(s)" + (
            f" and the finished epochs of {', '.join(r['id'] for r in partial)}" if partial else "")
        where = f"saved {what} to {save_finished(args, chapter, records + partial, ids)}" if records or partial \
            else "nothing had finished"
        ckpt = getattr(args, "checkpoint_dir", None)
        how = (f"run the same command with --resume to continue from the checkpoints in {ckpt}"
               if ckpt and Path(ckpt).is_dir() else
               "rerun to start again (with --checkpoint-dir DIR a run can be continued with --resume)")
        print(f"interrupted: {where}; {how}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except Exception:
        if records:
            print(f"stopped by the error below; saved the {len(records)} finished record(s) to "
                  f"{save_finished(args, chapter, list(records), ids)}", file=sys.stderr, flush=True)
        raise


def save_finished(args: argparse.Namespace, chapter: str, records: list[dict], ids: Sequence[str]) -> Path:
    """Write a stopped script's finished records (with the saved ones of other ids under
    ``--merge``) to DIR/chapter.json; return its path."""
    return write_results(args.out, chapter, merge_saved(args.out, chapter, records, ids) if args.merge else records)


def make_record(cfg: RunConfig, per_seed: list[dict], metric: str = "peak", **extra) -> dict:
    """The results record of one run id (row of docs/book.md) from its per-seed runs."""
    return {
        "id": cfg.id,
        "book": cfg.book,
        "note": cfg.note,
        "metric": metric,
        **summary([r[metric] for r in per_seed]),
        "seeds": [r["seed"] for r in per_seed],
        "per_seed": per_seed,
        "config": dataclasses.asdict(cfg),
        "wall_s": sum(r["wall_s"] for r in per_seed),
        **({"dataset": cfg.dataset} if hasattr(cfg, "dataset") else {}),  # (ch4 trains on no images)
        **environment(),
        **extra,
    }


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a literal | would end the cell)."""
    return str(text).replace("|", "\\|")


def formatted(r: dict) -> tuple[str, str, str]:
    """A record's book figure, our best and mean ± std as table text, in the record's unit."""
    unit = r.get("unit", "%")  # accuracies are in percent; a record may name another unit
    fmt = ".2f" if unit == "%" else ".4g"
    suffix = "%" if unit == "%" else f" {unit}".rstrip()
    book = "–" if r.get("book") is None or not on_mnist(r) else f"{r['book']:{fmt}}{suffix}"
    best = "–" if r.get("best") is None else f"{r['best']:{fmt}}{suffix}"
    ms = "–" if r.get("mean") is None or not math.isfinite(r["mean"]) else f"{r['mean']:{fmt}} ± {r['std']:{fmt}}"
    return book, best, ms


def marks(r: dict) -> list[str]:
    """What a reader must know before comparing a record with the book: a smoke run, a
    modified config, an interrupted, resumed or diverged run."""
    out = ["smoke run (--quick)"] * bool(r.get("quick"))
    if r.get("modified"):
        out.append("modified: --set " + " --set ".join(r["modified"]))
    per_seed = [p for p in r.get("per_seed", []) if isinstance(p, dict)]
    if r.get("interrupted"):
        epochs = r.get("config", {}).get("epochs", "?")
        out.append("interrupted: " + ", ".join(f"seed {p['seed']} stopped after {p['epochs_done']} of {epochs} epochs"
                                               for p in per_seed if "epochs_done" in p))
    if any(p.get("resumed_after") for p in per_seed):
        out.append("resumed from checkpoints (wall time includes the earlier epochs)")
    for p in per_seed:
        if p.get("diverged"):
            d = p["diverged"]
            at = f"step {d['step']}" if d.get("step") is not None else f"epoch {d['epoch']}"
            out.append(f"seed {p['seed']} diverged at {at} (NaN guard), after {len(p.get('accuracy', []))} epochs")
    return out


def comparable(r: dict) -> bool:
    """Whether a record ran at the book's settings, so that its figure may be set beside the book's."""
    return not (r.get("quick") or r.get("modified"))


def book_cell(r: dict, book: str) -> str:
    """The book's figure as a table cell, marked when the record is not comparable with it."""
    return book if comparable(r) or book == "–" else f"{book} (not comparable)"


def note_cell(r: dict) -> str:
    """A record's note with its `marks` first, as table text."""
    return cell("; ".join(marks(r) + ([r["note"]] if r.get("note") else [])))


def on_mnist(r: dict) -> bool:
    """Whether a record ran on MNIST, the only data the book's figures are for (records from
    before data sets were named are MNIST's)."""
    return r.get("dataset", "mnist") == "mnist"


def dataset_table(records: list[dict]) -> str:
    """Our figures on data other than MNIST, one row per record, naming the data set. No book
    column and no note: both speak of the book's MNIST runs."""
    lines = ["| id | data set | ours best | mean ± std | seeds | metric | wall s |", "|---|---|---|---|---|---|---|"]
    for r in records:
        _, best, ms = formatted(r)
        lines.append(f"| {r['id']} | {r.get('dataset', 'mnist')} | {best} | {ms} | {len(r.get('seeds', []))} | "
                     f"{cell(r.get('metric', ''))} | {r['wall_s']:.1f} |")
    return "\n".join(lines) + f"\n\nDevice: {records[0]['device']}; jax {jax.__version__}; {environment()['machine']}.\n"


def markdown_table(records: list[dict]) -> str:
    """Book against ours, one row per record (`dataset_table` for data other than MNIST)."""
    if not all(map(on_mnist, records)):
        return dataset_table(records)
    lines = ["| id | book | ours best | mean ± std | seeds | metric | wall s | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        book, best, ms = formatted(r)
        lines.append(f"| {r['id']} | {book_cell(r, book)} | {best} | {ms} | {len(r.get('seeds', []))} | "
                     f"{cell(r.get('metric', ''))} | {r['wall_s']:.1f} | {note_cell(r)} |")
    dev = records[0]["device"] if records else ""
    lines.append(f"\nData: MNIST. Device: {dev}; jax {jax.__version__}; {environment()['machine']}.")
    return "\n".join(lines) + "\n"


def json_safe(obj):
    """``obj`` with every non-finite float (a diverged run's cost) replaced by None, so the
    results file is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_results(out_dir: str | os.PathLike, chapter: str, records: list[dict], extra_md: str = "") -> Path:
    """Write ``chapter.json`` and ``chapter.md`` (the table, then ``extra_md``) into out_dir
    atomically; return the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{chapter}.json"
    md = markdown_table(records) + (f"\n{extra_md}" if extra_md else "")
    for target, text in ((path, json.dumps(json_safe(records), indent=1, allow_nan=False)),
                         (out / f"{chapter}.md", md)):
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, target)
    return path


def report_saved(out_dir: str | os.PathLike, chapter: str, records: list[dict], extra_md: str = "") -> Path:
    """`write_results`, then print the table (and ``extra_md``) and where it went; return the JSON path."""
    path = write_results(out_dir, chapter, records, extra_md)
    print(markdown_table(records) + (f"\n{extra_md}" if extra_md else ""))
    print(f"wrote {path}")
    return path


def merge_saved(out_dir: str | os.PathLike, chapter: str, records: list[dict], ids: Sequence[str]) -> list[dict]:
    """``records`` plus the records saved in DIR/chapter.json whose ids were not run again
    (a script's ``--merge``), sorted by ``ids``; a record "5h tanh/glorot" sorts as "5h"."""
    path = Path(out_dir) / f"{chapter}.json"
    new = {r["id"] for r in records}
    saved = [r for r in json.loads(path.read_text()) if r["id"] not in new] if path.exists() else []
    order = {id_: i for i, id_ in enumerate(ids)}
    return sorted(saved + records, key=lambda r: order.get(r["id"].split()[0], len(order)))


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are two lines (what was wrong, where help is) with
    status 2 (`cli`), not the whole usage text."""

    def error(self, message: str):
        cli.fail(message, "(--help lists every option and config field)")


def base_parser(description: str, ids: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The options every chapter script takes (``ids``: its run ids, listed under ``--only``);
    parse them with `parse_args`."""
    p = Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke version of every run")
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per run (default 3): seeds 0..N-1")
    p.add_argument("--out", default="results", help="directory for the results files (default: results)")
    p.add_argument("--only", default=None, metavar="IDS",
                   help="comma-separated run ids to run (default: all)" + (f": {', '.join(ids)}" if ids else "")
                        + "; docs/book.md gives each one's settings and the book's figure")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, else the cache)")
    p.add_argument("--dataset", choices=data.DATASETS, default="mnist",
                   help="the data: mnist (default), fashion-mnist or kmnist, each with the book's 50k/10k/10k split "
                        "(--data-dir then names that data set's folder; the book's figures are shown only for MNIST)")
    p.add_argument("--gradient", choices=["backprop", "autodiff"], default="backprop",
                   help="gradient method: hand-derived BP1–BP4 or jax.grad (default backprop)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--merge", action="store_true",
                   help="keep the saved records of ids not run this time (from DIR/chN.json)")
    p.add_argument("--compile-cache", metavar="DIR", default=os.environ.get(COMPILE_CACHE_ENV) or None,
                   help="keep compiled programs in DIR for later runs (JAX's persistent compilation cache; "
                        f"default: ${COMPILE_CACHE_ENV}, else none)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return p


COMPILE_CACHE_ENV = "NNJAX_COMPILE_CACHE"


def add_run_options(p: argparse.ArgumentParser, config: type = RunConfig, *,
                    checkpoints: bool = True) -> argparse.ArgumentParser:
    """``--set`` for the fields of the ``config`` dataclass (listed in ``--help``), and with
    ``checkpoints`` ``--checkpoint-dir``, ``--checkpoint-every`` and ``--resume``.

    A script applies ``--set`` with `prepare` (or `check_args`) and passes `fit_options` to its training.
    """
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"override a {config.__name__} field of every selected run, e.g. --set epochs=2 "
                        "(repeatable; the fields are listed below)")
    p.epilog = fields_epilog(config)
    if checkpoints:
        p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                       help="write checkpoints of every run there (DIR/<id>/seed<s>/epoch-NNNNNN.ckpt)")
        p.add_argument("--checkpoint-every", type=positive_int, default=1, metavar="K",
                       help="epochs between checkpoints (default 1; the last epoch is always saved)")
        p.add_argument("--resume", action="store_true",
                       help="continue each run from its newest checkpoint in --checkpoint-dir (bit-identical result)")
    return p


def parse_args(p: argparse.ArgumentParser, argv=None, default_checkpoints: bool = False) -> argparse.Namespace:
    """Parse a chapter's command line, check what can be checked before any work, and turn
    on the compilation cache if one is asked for. ``default_checkpoints``: the script has a
    default checkpoint folder, so --resume needs no --checkpoint-dir."""
    args = p.parse_args(argv)
    if getattr(args, "resume", False) and args.checkpoint_dir is None and not default_checkpoints:
        p.error("--resume needs --checkpoint-dir DIR (where the checkpoints are)")
    if (getattr(args, "checkpoint_dir", None) and not args.resume and not default_checkpoints
            and holds_checkpoints(args.checkpoint_dir)):  # (a script with its own runs folder checks per run)
        p.error(f"--checkpoint-dir {args.checkpoint_dir} already holds checkpoints of an earlier run: add --resume "
                "to continue them, or give an empty directory")
    if args.compile_cache:
        use_compile_cache(args.compile_cache)
    return args


def holds_checkpoints(directory: str | os.PathLike) -> bool:
    """Whether any run's checkpoint is somewhere under ``directory``."""
    return any(Path(directory).rglob("epoch-*.ckpt"))


def use_compile_cache(directory: str | os.PathLike) -> None:
    """Keep every compiled program in ``directory``, so that a later process loads it
    instead of compiling again (JAX's persistent compilation cache; set it before the
    first compile). The size and compile-time thresholds are off: nnjax's programs are
    small, and on CPU many compile in under JAX's default one second."""
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def fit_options(args: argparse.Namespace) -> dict:
    """The checkpoint options of the command line, as keyword arguments of `run_seeds`."""
    return dict(checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every, resume=args.resume)


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace, configs: Sequence) -> list:
    """``configs`` with ``--set`` applied; exits with a message naming the field on error."""
    try:
        return [override(c, args.set) for c in configs]
    except (ValueError, TypeError) as e:
        p.error(str(e))


def prepare(p: argparse.ArgumentParser, args: argparse.Namespace, configs: Sequence, quick: Callable) -> list:
    """``configs`` as this command runs them: shrunk by ``quick`` under ``--quick``, with
    ``--gradient``, ``--dataset`` and then ``--set`` applied (`check_args`), each checked
    against the data's shapes before any data is loaded (`fits_mnist`; every data set here
    has MNIST's shapes)."""
    if any(a.startswith("dataset=") for a in args.set):
        p.error("--set dataset=...: choose the data set with --dataset (the data loaded for every run)")
    prepared = check_args(p, args, [dataclasses.replace(quick(c) if args.quick else c, gradient=args.gradient,
                                                        **dataset_field(c, args.dataset)) for c in configs])
    for c in prepared:
        if problem := fits_mnist(c):
            p.error(f"run {c.id}: {problem}")
    return prepared


def dataset_field(cfg, dataset: str) -> dict:
    """``{"dataset": dataset}`` for a config with a dataset field, else nothing (ch4 trains on no images)."""
    return {"dataset": dataset} if "dataset" in {f.name for f in dataclasses.fields(cfg)} else {}


MNIST_SHAPE = {"inputs": 784, "classes": 10, "train_size": 50_000, "eval_size": 10_000}


def fits_mnist(cfg) -> str:
    """Why a config cannot train on MNIST (784 pixels, 10 digits, 50,000 training and 10,000
    validation or test images), or "" if it can; known without loading the data."""
    sizes = getattr(cfg, "sizes", None)
    if sizes and sizes[0] != MNIST_SHAPE["inputs"]:
        return f"sizes={','.join(map(str, sizes))}: the input layer must have 784 neurons (MNIST's 28×28 pixels)"
    if sizes and sizes[-1] != MNIST_SHAPE["classes"]:
        return f"sizes={','.join(map(str, sizes))}: the output layer must have 10 neurons (MNIST's 10 digits)"
    for field in ("train_size", "eval_size"):
        if (getattr(cfg, field, None) or 0) > MNIST_SHAPE[field]:
            return f"{field}={getattr(cfg, field)}: MNIST has only {MNIST_SHAPE[field]:,} images there"
    return ""


def parse_only(only: str | None, known: Sequence[str]) -> set[str]:
    """The run ids named by ``--only`` (all when None), failing clearly on unknown ids."""
    if only is None:
        return set(known)
    wanted = {s.strip() for s in only.split(",") if s.strip()}
    unknown = sorted(wanted - set(known))
    if unknown or not wanted:
        raise cli.UsageError(f"--only {only!r}: unknown run id(s) {unknown}; this chapter has {', '.join(known)} "
                             "(docs/book.md describes each)")
    return wanted
