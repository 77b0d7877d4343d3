"""How every experiment script meets its user: mistakes are short messages, not tracebacks.

Each script ends with ``cli.run(main)``. A mistake the user can fix (missing or damaged
MNIST files, a bad ``--set`` value, a network that cannot fit MNIST, an unknown run id,
checkpoints in the way) prints ``error: ...`` and how to fix it on at most three lines of
stderr and exits with status 2. Ctrl-C while no run is training (loading data,
compiling) prints one line and exits with status 130, as Ctrl-C during training does.
``--debug`` lets every exception through with its full traceback. Anything else is a
bug and keeps its traceback.
"""

import sys
from collections.abc import Callable, Sequence

from nnjax import checkpoint, data

USAGE_STATUS = 2  # a mistake in the command line, its config or its data
INTERRUPT_STATUS = 130  # Ctrl-C, as the shell reports SIGINT (128 + 2)


class UsageError(SystemExit):
    """A mistake in the command line found after parsing; the message says what was wrong
    and how to fix it. A SystemExit, so that a script run without `run` still stops with
    the message (status 1); under `run` it is one line and status 2. (The argument
    parser's own errors call `fail` at once.)"""

    def __str__(self) -> str:
        return str(self.code)


HINTS = {
    data.DataError: "fix: put the four MNIST files (raw or .gz) in a folder and pass --data-dir "
                    "FOLDER or set NNJAX_DATA_DIR=FOLDER (README: Data)",
    checkpoint.CheckpointError: "fix: resume with the settings the checkpoints were written with, "
                                "or delete them (or give an empty --checkpoint-dir) to start again",
}


def run(main: Callable[[Sequence[str]], object], argv: Sequence[str] | None = None) -> None:
    """Call ``main(argv)`` (default: the command line), turning the user's mistakes and an
    early Ctrl-C into short messages with an exit status; ``--debug`` lets them through."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--debug" in argv:
        main(argv)
        return
    try:
        main(argv)
    except UsageError as e:
        fail(str(e))
    except (data.DataError, checkpoint.CheckpointError) as e:
        fail(headline(str(e)), next(hint for kind, hint in HINTS.items() if isinstance(e, kind)))
    except KeyboardInterrupt:
        print("interrupted while no run was training: nothing was lost (results already written "
              "are named above)", file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPT_STATUS) from None


def headline(message: str) -> str:
    """The first line of a long message, with the line after it when the first ends in a colon
    (e.g. "no intact checkpoint in DIR:" and the first reason)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return " ".join(lines[:2]) if len(lines) > 1 and lines[0].endswith(":") else lines[0]


def fail(message: str, hint: str = "") -> None:
    """Print ``error: message`` (and the hint) to stderr and exit with status 2."""
    print(f"error: {message}" + (f"\n{hint}" if hint else ""), file=sys.stderr, flush=True)
    raise SystemExit(USAGE_STATUS)
