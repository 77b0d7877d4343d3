"""Results records and the files made of them.

`make_record` turns one run id's per-seed outcomes into the record every chapter writes:

    {"id", "book", "metric", "best", "mean", "std", "per_seed", "config",
     "wall_s", "device", "jax_version", ...}

with accuracies in percent. `write_results` saves ``DIR/chN.json`` and a Markdown table
``DIR/chN.md`` comparing the book with our numbers; `merge_saved` keeps the saved records
of ids not run again. Plotting reads these files and never retrains.
"""

import dataclasses
import functools
import json
import math
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

REPO = Path(__file__).resolve().parent.parent  # the checkout whose commit a record names


def environment() -> dict[str, Any]:
    """Where a result was computed: device, versions, machine."""
    dev = jax.devices()[0]
    return {
        "device": dev.platform if dev.device_kind in ("", dev.platform) else f"{dev.platform}: "
                                                                             f"{dev.device_kind}",
        "jax_version": jax.__version__,
        "python": platform.python_version(),
        "machine": machine(),
        "git_commit": code_commit(),
    }


def machine() -> str:
    """This computer in a few words: architecture, core count, CPU model and system."""
    return f"{platform.machine()}, {os.cpu_count()} cores, {cpu_name()}, {platform.system()}"


def cpu_name(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's model name: Linux's ``cpuinfo`` names it (two VMs with the same core
    count can differ twofold in speed), elsewhere `platform.processor`, else "unknown CPU"."""
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        lines = []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "unknown CPU"


def git_commit(top: Path = REPO) -> str:
    """The commit checked out in ``top``, or "unknown". "-dirty" is added when tracked files
    outside ``results/`` differ from it: the scripts write their own results there, so a long
    run's second record would otherwise call its unchanged code dirty."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=top, capture_output=True, text=True,
                              check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results"], cwd=top, capture_output=True, text=True,
                               check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + "-dirty" * bool(dirty.stdout.strip())


@functools.cache
def code_commit() -> str:
    """`git_commit` of this checkout when first asked for in this process, i.e. the commit of
    the code the process loaded. The scripts ask at start-up (`command_line.parse_args`), so a
    record written hours later still names it when the checkout has moved on meanwhile."""
    return git_commit()


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




def make_record(cfg, per_seed: list[dict], metric: str = "peak", **extra) -> dict:
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
        # (ch4 trains on no images)
        **({"dataset": cfg.dataset} if hasattr(cfg, "dataset") else {}),
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
    ms = ("–" if r.get("mean") is None or not math.isfinite(r["mean"])
          else f"{r['mean']:{fmt}} ± {r['std']:{fmt}}")
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
        out.append("interrupted: " + ", ".join(f"seed {p['seed']} stopped after {p['epochs_done']} "
                                               f"of {epochs} epochs" for p in per_seed
                                               if "epochs_done" in p))
    if any(p.get("resumed_after") for p in per_seed):
        out.append("resumed from checkpoints (wall time includes the earlier epochs)")
    for p in per_seed:
        if p.get("diverged"):
            d = p["diverged"]
            at = f"step {d['step']}" if d.get("step") is not None else f"epoch {d['epoch']}"
            out.append(f"seed {p['seed']} diverged at {at} (NaN guard), after "
                       f"{len(p.get('accuracy', []))} epochs")
    return out


def comparable(r: dict) -> bool:
    """Whether a record ran at the book's settings, so that its figure may be set beside the
    book's."""
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
    column and no note (both speak of the book's MNIST runs), but the `marks`: a smoke run or
    a ``--set`` change must show here too."""
    lines = ["| id | data set | ours best | mean ± std | seeds | metric | wall s | marks |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        _, best, ms = formatted(r)
        lines.append(f"| {r['id']} | {r.get('dataset', 'mnist')} | {best} | {ms} | "
                     f"{len(r.get('seeds', []))} | {cell(r.get('metric', ''))} | "
                     f"{r['wall_s']:.1f} | {cell('; '.join(marks(r)))} |")
    return "\n".join(lines) + f"\n\n{provenance_line(records)}\n"


def device_name(name: str) -> str:
    """A device name as `environment` writes it now: records written before it left out a
    device kind equal to the platform say "cpu:cpu" for "cpu"."""
    platform_name, _, kind = name.partition(":")
    return platform_name if kind == platform_name else name


def provenance_line(records: list[dict]) -> str:
    """Where the records in a table ran, as their own fields say (merged records may come from
    several machines or jax versions: each distinct value is listed once, in order)."""
    def distinct(field: str) -> str:
        seen = dict.fromkeys(device_name(r[field]) if field == "device" else r[field]
                             for r in records if r.get(field))
        return " / ".join(seen) or "unknown"
    return (f"Device: {distinct('device')}; jax {distinct('jax_version')}; "
            f"{distinct('machine')}.")


def markdown_table(records: list[dict]) -> str:
    """Book against ours, one row per record (`dataset_table` for data other than MNIST)."""
    if not all(map(on_mnist, records)):
        return dataset_table(records)
    lines = ["| id | book | ours best | mean ± std | seeds | metric | wall s | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in records:
        book, best, ms = formatted(r)
        lines.append(f"| {r['id']} | {book_cell(r, book)} | {best} | {ms} | "
                     f"{len(r.get('seeds', []))} | {cell(r.get('metric', ''))} | "
                                                     f"{r['wall_s']:.1f} | {note_cell(r)} |")
    lines.append(f"\nData: MNIST. {provenance_line(records)}")
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


def write_results(out_dir: str | os.PathLike, chapter: str, records: list[dict],
                  extra_md: str = "") -> Path:
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


def report_saved(out_dir: str | os.PathLike, chapter: str, records: list[dict],
                 extra_md: str = "") -> Path:
    """`write_results`, then print the table (and ``extra_md``) and where it went; return the JSON
    path."""
    path = write_results(out_dir, chapter, records, extra_md)
    print(markdown_table(records) + (f"\n{extra_md}" if extra_md else ""))
    print(f"wrote {path}")
    return path


def merge_saved(out_dir: str | os.PathLike, chapter: str, records: list[dict],
                ids: Sequence[str]) -> list[dict]:
    """``records`` plus the records saved in DIR/chapter.json whose ids were not run again
    (a script's ``--merge``), sorted by ``ids``; a record "5h tanh/glorot" sorts as "5h"."""
    path = Path(out_dir) / f"{chapter}.json"
    new = {r["id"] for r in records}
    saved = [r for r in json.loads(path.read_text()) if r["id"] not in new] if path.exists() else []
    order = {id_: i for i, id_ in enumerate(ids)}
    return sorted(saved + records, key=lambda r: order.get(r["id"].split()[0], len(order)))


