"""The per-epoch progress line every training script prints."""

import time
from collections.abc import Callable


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
        print(f"[{label}] Epoch {r['epoch']}: {acc}  ({r['seconds']:.2f} s; elapsed {elapsed:.1f} "
              f"s, ETA {eta_s:.1f} s)", flush=True)

    return show
