"""Ctrl-C during a script keeps what finished: `saving_on_interrupt` writes the finished
records (and the interrupted run's finished epochs) before the script exits."""

import argparse
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path

from experiments.common import Interrupted
from experiments.result_files import merge_saved, write_results


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
        where = (f"saved {what} to {save_finished(args, chapter, records + partial, ids)}"
                 if records or partial else "nothing had finished")
        ckpt = getattr(args, "checkpoint_dir", None)
        how = (f"run the same command with --resume to continue from the checkpoints in {ckpt}"
               if ckpt and Path(ckpt).is_dir() else
               "rerun to start again (with --checkpoint-dir DIR a run can be continued with "
               "--resume)")
        print(f"interrupted: {where}; {how}", file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    except Exception:
        if records:
            print(f"stopped by the error below; saved the {len(records)} finished record(s) to "
                  f"{save_finished(args, chapter, list(records), ids)}", file=sys.stderr,
                  flush=True)
        raise


def save_finished(args: argparse.Namespace, chapter: str, records: list[dict],
                  ids: Sequence[str]) -> Path:
    """Write a stopped script's finished records (with the saved ones of other ids under
    ``--merge``) to DIR/chapter.json; return its path."""
    return write_results(args.out, chapter, merge_saved(args.out, chapter, records, ids)
                         if args.merge else records)


