"""The command line every chapter script shares: its options (`base_parser`,
`add_run_options` for ``--set`` and checkpoints), parsing with the checks that can be made
before any work (`parse_args`, `prepare`), and ``--only``."""

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import jax

from experiments import cli, result_files
from experiments.run_config import RunConfig, fields_epilog, override
from nnjax import data


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
    p.add_argument("--seeds", type=positive_int, default=3, help="seeds per run (default 3): seeds "
                                                                 "0..N-1")
    p.add_argument("--out", default="results", help="directory for the results files (default: "
                                                    "results)")
    p.add_argument("--only", default=None, metavar="IDS",
                   help="comma-separated run ids to run (default: all)"
                   + (f": {', '.join(ids)}" if ids else "")
                        + "; docs/book.md gives each one's settings and the book's figure")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, "
                                                    "else the cache)")
    p.add_argument("--dataset", choices=data.DATASETS, default="mnist",
                   help="the data: mnist (default), fashion-mnist or kmnist, each with the book's "
                        "50k/10k/10k split (--data-dir then names that data set's folder; the "
                        "book's figures are shown only for MNIST)")
    p.add_argument("--gradient", choices=["backprop", "autodiff"], default="backprop",
                   help="gradient method: hand-derived BP1–BP4 or jax.grad (default backprop)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--merge", action="store_true",
                   help="keep the saved records of ids not run this time (from DIR/chN.json)")
    p.add_argument("--compile-cache", metavar="DIR", default=os.environ.get(COMPILE_CACHE_ENV)
                   or None, help="keep compiled programs in DIR for later runs (JAX's persistent "
                                 "compilation cache; "
                        f"default: ${COMPILE_CACHE_ENV}, else none)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return p


COMPILE_CACHE_ENV = "NNJAX_COMPILE_CACHE"


def add_run_options(p: argparse.ArgumentParser, config: type = RunConfig, *,
                    checkpoints: bool = True) -> argparse.ArgumentParser:
    """``--set`` for the fields of the ``config`` dataclass (listed in ``--help``), and with
    ``checkpoints`` ``--checkpoint-dir``, ``--checkpoint-every`` and ``--resume``.

    A script applies ``--set`` with `prepare` (or `check_args`) and passes `fit_options` to its
    training.
    """
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help=f"override a {config.__name__} field of every selected run, e.g. --set "
                        "epochs=2 (repeatable; the fields are listed below)")
    p.epilog = fields_epilog(config)
    if checkpoints:
        p.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                       help="write checkpoints of every run there "
                            "(DIR/<id>/seed<s>/epoch-NNNNNN.ckpt)")
        p.add_argument("--checkpoint-every", type=positive_int, default=1, metavar="K",
                       help=
                       "epochs between checkpoints (default 1; the last epoch is always saved)")
        p.add_argument("--resume", action="store_true",
                       help="continue each run from its newest checkpoint in --checkpoint-dir "
                            "(bit-identical result)")
    return p


def parse_args(p: argparse.ArgumentParser, argv=None,
               default_checkpoints: bool = False) -> argparse.Namespace:
    """Parse a chapter's command line, check what can be checked before any work, turn on
    the compilation cache if one is asked for, and note the commit of the code that runs.
    ``default_checkpoints``: the script has a default checkpoint folder, so --resume needs
    no --checkpoint-dir."""
    args = p.parse_args(argv)
    result_files.code_commit()  # the commit this process's records will name
    if getattr(args, "resume", False) and args.checkpoint_dir is None and not default_checkpoints:
        p.error("--resume needs --checkpoint-dir DIR (where the checkpoints are)")
    if (getattr(args, "checkpoint_dir", None) and not args.resume and not default_checkpoints
            # (a script with its own runs folder checks per run)
            and holds_checkpoints(args.checkpoint_dir)):
        p.error(f"--checkpoint-dir {args.checkpoint_dir} already holds checkpoints of an earlier "
                "run: add --resume to continue them, or give an empty directory")
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
    return dict(checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
                resume=args.resume)


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


def prepare(p: argparse.ArgumentParser, args: argparse.Namespace, configs: Sequence,
            quick: Callable) -> list:
    """``configs`` as this command runs them: shrunk by ``quick`` under ``--quick``, with
    ``--gradient``, ``--dataset`` and then ``--set`` applied (`check_args`), each checked
    against the data's shapes before any data is loaded (`fits_mnist`; every data set here
    has MNIST's shapes)."""
    if any(a.startswith("dataset=") for a in args.set):
        p.error("--set dataset=...: choose the data set with --dataset (the data loaded for every "
                "run)")
    prepared = check_args(p, args, [dataclasses.replace(quick(c) if args.quick else c,
                                                        gradient=args.gradient,
                                                        **dataset_field(c, args.dataset))
                                    for c in configs])
    for c in prepared:
        if problem := fits_mnist(c):
            p.error(f"run {c.id}: {problem}")
    return prepared


def dataset_field(cfg, dataset: str) -> dict:
    """``{"dataset": dataset}`` for a config with a dataset field, else nothing (ch4 trains on no
    images)."""
    return {"dataset": dataset} if "dataset" in {f.name for f in dataclasses.fields(cfg)} else {}


MNIST_SHAPE = {"inputs": 784, "classes": 10, "train_size": 50_000, "eval_size": 10_000}


def fits_mnist(cfg) -> str:
    """Why a config cannot train on MNIST (784 pixels, 10 digits, 50,000 training and 10,000
    validation or test images), or "" if it can; known without loading the data."""
    sizes = getattr(cfg, "sizes", None)
    if sizes and sizes[0] != MNIST_SHAPE["inputs"]:
        return (f"sizes={','.join(map(str, sizes))}: the input layer must have 784 neurons "
                "(MNIST's 28×28 pixels)")
    if sizes and sizes[-1] != MNIST_SHAPE["classes"]:
        return (f"sizes={','.join(map(str, sizes))}: the output layer must have 10 neurons "
                "(MNIST's 10 digits)")
    for field in ("train_size", "eval_size"):
        if (getattr(cfg, field, None) or 0) > MNIST_SHAPE[field]:
            return (f"{field}={getattr(cfg, field)}: MNIST has only {MNIST_SHAPE[field]:,} "
                    "images there")
    return ""


def parse_only(only: str | None, known: Sequence[str]) -> set[str]:
    """The run ids named by ``--only`` (all when None), failing clearly on unknown ids."""
    if only is None:
        return set(known)
    wanted = {s.strip() for s in only.split(",") if s.strip()}
    unknown = sorted(wanted - set(known))
    if unknown or not wanted:
        raise cli.UsageError(f"--only {only!r}: unknown run id(s) {unknown}; this chapter has "
                             f"{', '.join(known)} (docs/book.md describes each)")
    return wanted
