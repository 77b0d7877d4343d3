"""Chapter 3's pieces of `nnjax.train.fit`: monitoring, early stopping and the η schedule."""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from nnjax import validate
from nnjax.optim import set_hyperparams
from nnjax.train import Piece, Run


def counters() -> dict:
    """The ``State.extra`` that chapters 1 and 3 checkpoint: the η schedule's last change and
    whether the run ended."""
    return {"changed_at": jnp.asarray(0, jnp.int32), "stopped": jnp.asarray(False)}


def epochs_without_improvement(accuracy: Sequence[float], since: int = 0) -> int:
    """Epochs since the best accuracy so far, counting only epochs from index ``since`` on.

    ch3's "no-improvement-in-n" fires when this reaches n; a tie is no improvement.
    """
    if not accuracy:
        return 0
    best = max(range(len(accuracy)), key=lambda i: (accuracy[i], -i))
    return len(accuracy) - 1 - max(best, since - 1)


def halt(run: Run) -> None:
    """End the run after this epoch (kept in the state when it has ``stopped``)."""
    run.stop = True
    if "stopped" in run.state.extra:
        run.state = run.state.replace(extra={**run.state.extra, "stopped": jnp.asarray(True)})


class Evaluate(Piece):
    """Record ``evaluation_accuracy``/``_cost`` on ``data`` and, with ``monitor_training``,
    ``training_*`` (ch3, network2.py's ``monitor_*``) by ``evaluate(params, x, y) -> (correct, mean
    cost)``.

    penalty: ``(params, λ, size) -> term`` added to each cost as network2.py reports it
    (`nnjax.optim.l2_penalty`), λ = ``lmbda`` or each member's from the optimiser state.
    """

    def __init__(self, evaluate: Callable, data=None, monitor_training: bool = False,
                 penalty: Callable | None = None, lmbda: float | None = None,
                 members: bool = False):
        self.data = data if data is None or jnp.ndim(data[0]) != 2 else validate.data_pair(
            "evaluation_data", data)
        self.monitor_training, self.lmbda, self.members = monitor_training, lmbda, members
        self.score = jax.jit(jax.vmap(evaluate, in_axes=(0, None, None))) if members else evaluate
        self.penalty = jax.jit(jax.vmap(penalty, (0, 0, None)),
                               static_argnums=2) if members and penalty else penalty

    def start(self, run: Run) -> None:
        if self.data is not None and jnp.shape(self.data[0])[1:] != jnp.shape(run.data[0])[1:]:
            raise ValueError(f"evaluation_data: x has shape {jnp.shape(self.data[0])}, "
                             f"training_data's x {jnp.shape(run.data[0])}: their examples must "
                             "have the same shape")

    def measure(self, run: Run) -> None:
        params = run.state.params
        training = run.data if self.monitor_training else None
        for name, data in (("evaluation", self.data), ("training", training)):
            if data is None:
                continue
            correct, cost = self.score(params, *data)
            lmbda = (run.state.opt_state.hyperparams["lmbda"] if self.penalty and self.lmbda is None
                     else self.lmbda)
            if self.members:
                cost = cost + self.penalty(params, lmbda, len(data[1])) if self.penalty else cost
                run.record[f"{name}_accuracy"] = correct.tolist()
                run.record[f"{name}_cost"] = cost.tolist()
            else:
                cost = float(cost) + (float(self.penalty(params, lmbda, len(data[1])))
                                      if self.penalty else 0.0)
                run.record[f"{name}_accuracy"], run.record[f"{name}_cost"] = int(correct), cost


def _patience(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive number of epochs or None, got {value!r}")
    return value


def _needs_evaluation(run: Run) -> None:
    if not any(isinstance(p, Evaluate) and p.data is not None for p in run.pieces):
        raise ValueError("early stopping and the η schedule watch evaluation accuracy: pass "
                         "evaluation_data")


class EarlyStopping(Piece):
    """End when ``after`` epochs bring no new best evaluation accuracy (ch3, "early stopping")."""

    def __init__(self, after: int):
        self.patience = _patience("stop_after", after)

    def start(self, run: Run) -> None:
        _needs_evaluation(run)

    def after(self, run: Run) -> None:
        if epochs_without_improvement(run.history["evaluation_accuracy"]) >= self.patience:
            halt(run)


class EtaSchedule(Piece):
    """Halve η after ``after`` epochs without a new best evaluation accuracy (counted afresh after
    each change); end when η would fall to η₀·``min_fraction`` (ch3, "variable learning rate").
    Records ``learning_rate``."""

    def __init__(self, after: int, min_fraction: float = 1 / 128):
        if not 0 < min_fraction < 1:
            raise ValueError(f"min_eta_fraction must be in (0, 1), got {min_fraction!r}")
        self.patience, self.min_fraction = _patience("halve_eta_after", after), min_fraction

    def start(self, run: Run) -> None:
        _needs_evaluation(run)
        if "learning_rate" not in getattr(run.state.opt_state, "hyperparams", {}):
            raise ValueError("the η schedule needs η in the optimiser state: use nnjax.optim.sgd")
        self.eta0 = float(run.state.opt_state.hyperparams["learning_rate"])

    def measure(self, run: Run) -> None:
        run.record["learning_rate"] = float(run.before.opt_state.hyperparams["learning_rate"])

    def after(self, run: Run) -> None:
        extra = run.state.extra
        since = int(extra.get("changed_at", 0))
        waited = epochs_without_improvement(run.history["evaluation_accuracy"], since)
        if run.stop or waited < self.patience:
            return
        eta, opt_state = run.record["learning_rate"] / 2, run.state.opt_state
        if eta > self.eta0 * self.min_fraction:
            opt_state = set_hyperparams(opt_state, learning_rate=eta)
        changed_at = jnp.asarray(run.record["epoch"] + 1, jnp.int32)
        extra = {**extra, "changed_at": changed_at}
        run.state = run.state.replace(opt_state=opt_state, extra=extra)
        if eta <= self.eta0 * self.min_fraction:
            halt(run)
