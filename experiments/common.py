"""Training a config over several seeds: what the chapter scripts share beside the
config (`experiments.config`), the records and results files (`experiments.records`)
and the command line (`experiments.options`).

`run_seeds` trains one `RunConfig` for several seeds; `make_record` turns the outcome
into a results record.
"""

import dataclasses
import os
import time
from functools import partial
from pathlib import Path
from typing import Sequence

import jax
import numpy as np

from experiments.run_config import GRADIENTS, RunConfig, override  # noqa: F401 (tests/test_ch6.py calls common.override)
from experiments.progress import progress_printer
from experiments.result_files import git_commit, make_record, percent  # noqa: F401 (ch6.train_members calls common.git_commit)
from nnjax import autodiff, backprop, checkpoint, data, guard, init, network, optim, train
from nnjax.network import Network


def gradient_fn(net: Network, method: str):
    """The mini-batch gradient by the chosen method (both have the same signature)."""
    if method == "backprop":
        return backprop.make_grad(net)
    if method == "autodiff":
        return autodiff.make_grad(net)
    raise ValueError(f"unknown gradient method {method!r}; choose one of {GRADIENTS}")


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
    """The regularisation term network2.py adds to a reported cost, or None without one."""
    if cfg.lmbda == 0:
        return None
    term = optim.l1_penalty if cfg.l1 else optim.l2_penalty
    return lambda params, size: term(params, cfg.lmbda, size)


def run_seeds(cfg: RunConfig, mnist: data.MNIST, seeds: Sequence[int], *, verbose: bool = True,
              optimizer=None, monitor_training: bool = False, checkpoint_dir: str | os.PathLike | None = None,
              checkpoint_every: int = 1, resume: bool = False) -> list[dict]:
    """Train ``cfg`` once per seed; return one dict per seed with its history.

    The seed s gives the key ``jax.random.key(s)``, split into the initialisation key and
    the shuffling key. ``optimizer`` defaults to `optimizer_for` (plain SGD with η unless
    the config regularises or uses momentum).
    With ``checkpoint_dir``, seed s of run ``cfg.id`` checkpoints into
    ``checkpoint_dir/<id>/seed<s>`` (see `nnjax.train.fit`), and ``resume`` continues there;
    a resumed seed's wall time adds the training seconds of the epochs run before.
    A seed stopped by the NaN guard is a result, not an error: its entry holds the finished
    epochs and ``"diverged"`` (the epoch, the step and the guard's message).
    """
    net = cfg.network()
    grad = gradient_fn(net, cfg.gradient)
    training, evaluation = select_data(mnist, cfg)
    training = network.check_data(training, net, f"{cfg.id} training data")
    evaluation = network.check_data(evaluation, net, f"{cfg.id} evaluation data")
    pinned = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("book", "note", "epochs", "seeds")}
    sizes = {"n_train": len(training[1]), "n_eval": len(evaluation[1])}
    out = []
    for s in seeds:
        k_init, k_train = jax.random.split(jax.random.key(s))
        params = init.init_params(k_init, net.sizes, cfg.init)
        show = progress_printer(f"{cfg.id} seed {s}", cfg.epochs, len(evaluation[1])) if verbose else None
        start = time.perf_counter()
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / cfg.id / f"seed{s}"
        before = resumed_epochs(ckpt) if resume else 0
        try:
            _, hist = train.fit(params, grad, optimizer or optimizer_for(cfg, len(training[1])), training,
                                epochs=cfg.epochs, batch_size=cfg.batch_size, key=k_train,
                                evaluate=partial(network.evaluate, net=net), evaluation_data=evaluation,
                                monitor_training=monitor_training or cfg.monitor_training, on_epoch=show,
                                penalty=penalty_for(cfg), stop_after=cfg.stop_after,
                                halve_eta_after=cfg.halve_eta_after, nan_guard=cfg.nan_guard,
                                checkpoint_dir=ckpt, checkpoint_every=checkpoint_every,
                                checkpoint_config=pinned | {"seed": s}, resume=resume)
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
