"""The reproduction report: every run id of docs/book.md, the book's figure beside ours, with plots.

    python -m experiments.report [--results DIR] [--out FILE]             # read saved results
    python -m experiments.report --run [--quick] [--seeds N] [--results DIR]   # run, then report

Without ``--run`` it only reads DIR/chN.json (default ``results``), redraws the figures
(`experiments.figures`) and writes DIR/REPORT.md: one table per chapter with every row of
docs/book.md (rows never run say so), our best and mean ± std over seeds, the seeds, device and
wall time (chapter 6 also lists every network by seed), then the chapter's figures. ``--run``
first runs every chapter script with ``--merge`` (hours at the book's settings on a CPU;
``--quick`` runs the seconds-long versions into DIR/quick unless ``--results`` says otherwise,
so saved full results are never overwritten by smoke runs).
"""

import argparse
import importlib
import json
import time
from pathlib import Path

from experiments import ch1_reference, cli, command_line, figures, result_files

CHAPTERS = {
    "ch1": "Chapter 1: network.py's sigmoid networks and the baselines",
    "ch2": "Chapter 2: backpropagation by hand",
    "ch3": "Chapter 3: cross-entropy, regularisation, initialisation, hyper-parameters",
    "ch4": "Chapter 4: universality",
    "ch5": "Chapter 5: unstable gradients",
    "ch6": "Chapter 6: convolutional networks, expanded data, ensembles",
}
HEADER = ["| id | book | ours best | mean ± std | seeds | metric | device | wall s | note |",
          "|---|---|---|---|---|---|---|---|---|"]


def row_of(id_: str) -> str:
    """The run id (docs/book.md) a record belongs to: "3m/eta=0.25" → "3m", "5f 2 hidden" → "5f"."""
    return id_.split("/")[0].split(" ")[0]


def chapter_rows(chapter: str, records: list[dict]) -> list[str]:
    """Table rows for every run id of a chapter (from its script's IDS) and every saved record."""
    module = importlib.import_module(f"experiments.{chapter}")
    ids = getattr(module, "IDS", None) or list(dict.fromkeys(row_of(r["id"]) for r in records))
    book = {c.id: c.book for c in getattr(module, "RUNS", [])}
    by_row: dict[str, list[dict]] = {}
    for r in records:
        by_row.setdefault(row_of(r["id"]), []).append(r)
    lines = []
    for id_ in ids + [i for i in by_row if i not in ids]:
        if id_ not in by_row:
            figure = "–" if book.get(id_) is None else f"{book[id_]:.2f}%"
            lines.append(f"| {id_} | {figure} | not run | | | | | | |")
            continue
        for r in by_row[id_]:
            b, best, ms = result_files.formatted(r)
            lines.append(f"| {r['id']} | {result_files.book_cell(r, b)} | {best} | {ms} | "
                         f"{len(r.get('seeds', []))} | "
                         f"{result_files.cell(r.get('metric', ''))} | "
                         f"{result_files.device_name(r.get('device', ''))} | "
                         f"{r.get('wall_s', 0):.0f} | {result_files.note_cell(r)} |")
    return lines


def reference_section(results: Path, records: list[dict]) -> list[str]:
    """Chapter 1's per-seed spread beside the NumPy reference's, when DIR/ch1_reference.json
    exists."""
    path = results / "ch1_reference.json"
    if not path.exists():
        return []
    return ["### Spread over seeds, against the NumPy reference (`python -m "
            "experiments.ch1_reference`)", "", ch1_reference.comparison(json.loads(
                path.read_text()), records)]


def networks_section(records: list[dict]) -> list[str]:
    """Every network (or separately trained ensemble) behind the chapter-6 rows, one line per
    seed: the spread each row's best and mean ± std summarise. Epochs count from 0."""
    lines = ["### Every network, by seed", "",
             "Test accuracy at the epoch of best validation accuracy (the book's metric) and its "
             "number of misclassified test images, beside the test accuracy after the last epoch "
             "and the highest test accuracy of any epoch. Epochs count from 0.", "",
             "| id | seed | epochs | best-validation epoch | validation there | test there | "
             "test errors | last-epoch test | peak test | wall h |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    return lines + [network_line(r["id"], s) for r in records for s in r["per_seed"]] + [""]


def network_line(id_: str, s: dict) -> str:
    """One network's line of `networks_section`. A separately trained ensemble (6l from 6k's
    stored members) votes with each member at its own best-validation epoch, so it has no epoch
    of its own and no per-epoch test accuracy: those cells read "each member's" and "–"."""
    seeds = s.get("seeds", [s["seed"]])
    separate = "best_validation_epoch" not in s
    cells = [id_, f"{seeds[0]}–{seeds[-1]}" if len(seeds) > 1 else s["seed"],
             s["epochs_done"] if separate else len(s["history"]["test_accuracy"]),
             "each member's" if separate else s["best_validation_epoch"],
             f"{s['best_validation']:.2f}%", f"{s['test_at_best_validation']:.2f}%",
             len(s["errors"]), f"{s['final_test']:.2f}%",
             "–" if separate else f"{s['peak_test']:.2f}%", f"{s['wall_s'] / 3600:.2f}"]
    return "| " + " | ".join(map(str, cells)) + " |"


def report(results: Path, pngs: list[Path]) -> str:
    """The Markdown report of the saved results in ``results``, linking the figures ``pngs``."""
    parts = ["# Reproduction report", "",
             "Every run id of docs/book.md: the book's figure and ours (best over seeds, and mean "
             "± std).", "Made by `python -m experiments.report` from the saved results beside this "
                        "file.", ""]
    machines, versions = set(), set()
    for chapter, title in CHAPTERS.items():
        path = results / f"{chapter}.json"
        records = json.loads(path.read_text()) if path.exists() else []
        machines |= {r["machine"] for r in records if "machine" in r}
        versions |= {r["jax_version"] for r in records if "jax_version" in r}
        parts += [f"## {title}", ""]
        if not records:
            parts += [f"No saved results: run `python -m experiments.{chapter}`.", ""]
        parts += HEADER + chapter_rows(chapter, records) + [""]
        if chapter == "ch1":
            parts += reference_section(results, records)
        if chapter == "ch6" and records:
            parts += networks_section(records)
        parts += [f"![{p.stem}]({p.name})" for p in sorted(pngs)
                  if p.name.startswith(f"{chapter}_")] + [""]
    parts += [f"Machines: {'; '.join(sorted(machines)) or '–'}. jax "
              f"{', '.join(sorted(versions)) or '–'}.", ""]
    return "\n".join(parts)


def run_all(results: Path, quick: bool, seeds: int, data_dir: str | None) -> None:
    """Run every chapter script, keeping saved records of rows not run again (``--merge``)."""
    for chapter in CHAPTERS:
        argv = ["--out", str(results), "--merge", "--seeds", str(seeds)] + ["--quick"] * quick
        argv += ["--data-dir", data_dir] if data_dir else []
        print(f"== python -m experiments.{chapter} {' '.join(argv)}", flush=True)
        importlib.import_module(f"experiments.{chapter}").main(argv)


def main(argv=None) -> str:
    p = command_line.Parser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("--results", default=None,
                   help="directory of the chN.json files (default: results, or results/quick with "
                        "--run --quick)")
    p.add_argument("--out", default=None, help="the report's path (default: RESULTS/REPORT.md)")
    p.add_argument("--run", action="store_true", help="run every chapter first (long), then report")
    p.add_argument("--quick", action="store_true", help="with --run: the seconds-long smoke "
                                                        "version of every run")
    p.add_argument("--seeds", type=command_line.positive_int, default=3, help="with --run: seeds "
                                                                              "per run (default 3)")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, "
                                                    "else the cache)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = p.parse_args(argv)
    if args.quick and not args.run:
        p.error("--quick only applies with --run (it chooses how the experiments are run)")
    results = Path(args.results or ("results/quick" if args.run and args.quick else "results"))
    start = time.perf_counter()
    if args.run:
        run_all(results, args.quick, args.seeds, args.data_dir)
    if not results.is_dir():
        p.error(f"no results directory {results}; run an experiment first (e.g. python -m "
                "experiments.ch1) or pass --run")
    text = report(results, figures.regenerate(results, args.data_dir))
    out = Path(args.out) if args.out else results / "REPORT.md"
    out.write_text(text)
    print(f"wrote {out} in {time.perf_counter() - start:.1f} s")
    return text


if __name__ == "__main__":
    cli.run(main)
