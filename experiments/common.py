"""Training a config over several seeds: what the chapter scripts share beside the
config (`experiments.run_config`), the records and results files (`experiments.result_files`)
and the command line (`experiments.command_line`).

`run_seeds` trains one `RunConfig` for several seeds; `make_record` turns the outcome
into a results record.
"""

import dataclasses
import os
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import jax
import numpy as np

from experiments.progress import progress_printer
from experiments.result_files import make_record, percent
from experiments.run_config import GRADIENTS, RunConfig
from nnjax import autodiff, backprop, checkpoint, data, guard, init, monitor, network, optim, train
from nnjax.network import Network


def gradient_fn(net: Network, method: str):
    """The mini-batch gradient by the chosen method (both have the same signature)."""
    if method == "backprop":
        return backprop.make_grad(net)
    if method == "autodiff":
        return autodiff.make_grad(net)
    raise ValueError(f"unknown gradient method {method!r}; choose one of {GRADIENTS}")


def select_data(mnist: data.MNIST, cfg: RunConfig):
    """(training, evaluation) pairs for a config: first N training images, (first N of) test or
    validation."""
    tr = mnist.training
    n = cfg.train_size or tr.x.shape[0]
    ev = {"test": mnist.test, "validation": mnist.validation}[cfg.evaluate_on]
    m = cfg.eval_size or ev.x.shape[0]
    return (tr.x[:n], tr.y[:n]), (ev.x[:m], ev.y[:m])


def optimizer_for(cfg: RunConfig, n: int):
    """The config's update rule for a training set of n images: plain SGD, or with L2/L1 and
    momentum."""
    if cfg.lmbda == 0 and not cfg.l1 and cfg.momentum == 0:
        return optim.sgd(cfg.eta)
    return optim.sgd(cfg.eta, lmbda=cfg.lmbda, n=n, momentum=cfg.momentum, l1=cfg.l1)


def penalty_for(cfg: RunConfig):
    """The regularisation term ``(params, λ, size)`` network2.py adds to a reported cost, or None
    without one."""
    if cfg.lmbda == 0 and not cfg.l1:
        return None
    return optim.l1_penalty if cfg.l1 else optim.l2_penalty


def pieces_for(cfg: RunConfig, net: Network, evaluation, *, monitor_training: bool = False,
               members: bool = False, checkpoint_dir=None, checkpoint_every: int = 1,
               resume: bool = False, pin=None) -> list:
    """`nnjax.train.fit`'s pieces for a config: evaluation (with network2's cost term), the
    config's NaN guard, early stopping and η schedule (not for members: a sweep), and
    checkpoints in ``checkpoint_dir``."""
    pieces = [monitor.Evaluate(partial(network.evaluate, net=net), evaluation,
                               monitor_training or cfg.monitor_training, penalty_for(cfg),
                               None if members else cfg.lmbda, members)]
    if not members:
        pieces += [guard.Guard()] if cfg.nan_guard else []
        pieces += [monitor.EarlyStopping(cfg.stop_after)] if cfg.stop_after is not None else []
        pieces += ([monitor.EtaSchedule(cfg.halve_eta_after)] if cfg.halve_eta_after is not None
                   else [])
    if checkpoint_dir is not None:
        pieces.append(checkpoint.Checkpoints(checkpoint_dir, checkpoint_every, resume, pin))
    return pieces


def run_seeds(cfg: RunConfig, mnist: data.MNIST, seeds: Sequence[int], *, verbose: bool = True,
              optimizer=None, monitor_training: bool = False,
              checkpoint_dir: str | os.PathLike | None = None, checkpoint_every: int = 1,
              resume: bool = False) -> list[dict]:
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
    pinned = {k: v for k, v in dataclasses.asdict(cfg).items()
              if k not in ("book", "note", "epochs", "seeds")}
    sizes = {"n_train": len(training[1]), "n_eval": len(evaluation[1])}
    opt = optimizer or optimizer_for(cfg, len(training[1]))
    program = train.make_epoch(gradient_fn(net, cfg.gradient), opt, cfg.batch_size)
    out = []
    for s in seeds:
        k_init, k_train = jax.random.split(jax.random.key(s))
        params = init.init_params(k_init, net.sizes, cfg.init)
        show = progress_printer(f"{cfg.id} seed {s}", cfg.epochs,
                                len(evaluation[1])) if verbose else None
        start = time.perf_counter()
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / cfg.id / f"seed{s}"
        before = resumed_epochs(ckpt) if resume else 0
        pieces = pieces_for(cfg, net, evaluation, monitor_training=monitor_training,
                            checkpoint_dir=ckpt, checkpoint_every=checkpoint_every, resume=resume,
                            pin=pinned | {"seed": s})
        try:
            _, hist = train.fit(program, train.State(params, opt.init(params), k_train,
                                                     extra=monitor.counters()),
                                training, epochs=cfg.epochs, pieces=pieces, on_epoch=show)
        except train.Interrupted as stop:
            if stop.history.get("epoch"):
                out.append(seed_result(s, stop.history, wall_time(start, stop.history, before),
                                       **sizes)
                           | {"epochs_done": len(stop.history["epoch"])})
            raise Interrupted([make_record(cfg, out, interrupted=True)] if out else []) from None
        except guard.NonFiniteError as stop:
            out.append(seed_result(s, stop.history, wall_time(start, stop.history, before), **sizes)
                       | {"diverged": {"epoch": stop.epoch, "step": stop.step,
                                       "message": str(stop)}})
            if verbose:
                print(f"[{cfg.id} seed {s}] diverged: {stop}", flush=True)
            continue
        resumed = {"resumed_after": before} if before else {}
        out.append(seed_result(s, hist, wall_time(start, hist, before), **sizes) | resumed)
    return out


def resumed_epochs(ckpt: Path | None) -> int:
    """How many epochs the newest checkpoint in ``ckpt`` holds (0 without one): where a resume
    starts."""
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
    return {"seed": seed, "peak": max(acc, default=None), "peak_epoch": int(np.argmax(acc)) if acc
            else None, "final": acc[-1] if acc else None, "accuracy": acc, "history": hist,
            "wall_s": wall_s, "n_train": n_train, "n_eval": n_eval}


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run; ``records`` are the results records of its finished seeds and
    epochs, marked ``"interrupted": true`` (none if no epoch had finished)."""

    def __init__(self, records: list[dict]):
        super().__init__("interrupted")
        self.records = records
