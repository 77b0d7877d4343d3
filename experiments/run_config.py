"""The run config of a fully connected network (`RunConfig`), ``--set FIELD=VALUE``
overrides for any config dataclass (`override`), and the field list ``--help`` shows.

Every config field carries its meaning in ``dataclasses.field(metadata={"help": ...})``
(written with `setting`); `fields_epilog` lists the fields with type, default and meaning.
"""

import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nnjax import activations, costs, data, init, validate
from nnjax.network import Network

REQUIRED = dataclasses.MISSING
GRADIENTS = ("backprop", "autodiff")


def setting(default: Any = REQUIRED, *, help: str) -> Any:
    """A config field with its default (or none: `REQUIRED`) and its one-line meaning for
    ``--help``."""
    return dataclasses.field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class RunConfig:
    """One training run of a fully connected network, as the book specifies it."""

    id: str = setting(help='the run id (docs/book.md), e.g. "1a"')
    sizes: tuple[int, ...] = setting(help="neurons per layer, input first")
    eta: float = setting(help="learning rate η")
    epochs: int = setting(help="passes over the training data")
    batch_size: int = setting(10, help="mini-batch size m")
    init: str = setting("large", help="initialiser: large | default | network3")
    activation: str = setting("sigmoid", help="hidden-layer activation")
    output: str = setting("sigmoid", help="output-layer activation")
    cost: str = setting("quadratic", help="quadratic | cross_entropy | log_likelihood")
    train_size: int | None = setting(None, help="train on the first N training images (None: all "
                                                "50,000)")
    evaluate_on: str = setting("test", help="test | validation")
    gradient: str = setting("backprop", help="backprop (hand-derived, BP1–BP4) | autodiff "
                                             "(jax.grad)")
    book: float | None = setting(None, help="the book's reported accuracy in percent, if any")
    note: str = setting("", help="what the book says, for rows without a single number")
    # chapter 3 (network2.py) options; the defaults are chapter 1's plain SGD
    lmbda: float = setting(0.0, help="regularisation parameter λ (L2 unless l1); scaled by the "
                                     "training-set size n")
    l1: bool = setting(False, help="L1 instead of L2: w → w − (ηλ/n) sgn(w) − η∇C")
    momentum: float = setting(0.0, help="momentum coefficient μ: v → μv − η∇C, w → w + v")
    eval_size: int | None = setting(None, help="evaluate on the first N images of the evaluation "
                                               "set (None: all)")
    monitor_training: bool = setting(False, help="also record training accuracy and cost after "
                                                 "each epoch")
    stop_after: int | None = setting(None, help="early stopping: end after this many epochs "
                                                "without a new best")
    halve_eta_after: int | None = setting(None, help="η schedule: halve η after this many epochs "
                                                     "without a new best")
    seeds: int | None = setting(None, help="a fixed number of seeds for this run (None: the "
                                           "--seeds option)")
    nan_guard: bool = setting(True, help="stop at the first NaN/Inf; False runs on with them, as "
                                         "network2.py does")
    dataset: str = setting("mnist", help="the data: mnist | fashion-mnist | kmnist (set with "
                                         "--dataset)")

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
                raise TypeError(f"RunConfig {self.id}: {field} must be True or False, got "
                                f"{getattr(self, field)!r}")
        for field, choices in (("init", init.BY_NAME), ("activation", activations.BY_NAME),
                               ("output", activations.BY_NAME), ("cost", costs.BY_NAME),
                               ("evaluate_on", ("test", "validation")), ("gradient", GRADIENTS)):
            if not (isinstance(getattr(self, field), str) and getattr(self, field) in choices):
                raise ValueError(f"RunConfig {self.id}: {field} must be one of {sorted(choices)}, "
                                 f"got {getattr(self, field)!r}")
        if self.dataset not in data.DATASETS:
            raise ValueError(f"RunConfig {self.id}: dataset must be one of {list(data.DATASETS)}, "
                             f"got {self.dataset!r}")
        self.network()  # sizes, and the pairing of output layer and cost

    def network(self) -> Network:
        return Network(
            self.sizes,
            activations.get(self.activation),
            activations.get(self.output),
            costs.get(self.cost),
        )


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
        changes[name] = parse_value(name, fields[name], text)
    return dataclasses.replace(cfg, **changes)


def parse_value(name: str, kind, text: str):
    """The value of ``--set name=text`` for a field of type ``kind``."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if len(args) == 1 and type(None) in typing.get_args(kind):  # X | None
        if text.lower() == "none":
            return None
        kind = args[0]
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"--set {name}={text}: expected true or false")
        return text.lower() == "true"
    sizes = typing.get_origin(kind) is tuple
    try:
        if sizes:
            return tuple(int(v) for v in text.split(",")) if text else ()
        return kind(text)
    except ValueError:
        expected = "comma-separated integers" if sizes else f"a value of type {kind.__name__}"
        raise ValueError(f"--set {name}={text}: expected {expected}") from None


def field_help(cls: type) -> dict[str, str]:
    """Each field of a config dataclass with its meaning (its ``help`` metadata; "" without one)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def type_name(kind) -> str:
    return kind.__name__ if type(kind) is type else str(kind)


def fields_epilog(cls: type) -> str:
    """``--help``'s list of the fields ``--set`` can change, one "FIELD (type, default): meaning"
    each."""
    lines = [f"{cls.__name__} fields, changed with --set FIELD=VALUE (a run may set its own value "
             "instead of the default; tuples are comma-separated, e.g. 784,100,10; none clears an "
             "optional field; booleans are true or false):"]
    for f in dataclasses.fields(cls):
        default = "set per run" if f.default is dataclasses.MISSING else f"default {f.default!r}"
        lines.append(f"  {f.name} ({type_name(f.type)}, {default}): {f.metadata.get('help', '')}")
    return "\n".join(lines)
