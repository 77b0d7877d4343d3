"""Every saved result the book reports a number for, in one table (reads files, never trains).

    python -m experiments.report [--results DIR] [--all]

Reads DIR/ch*.json (default ``results``) and prints a Markdown table: the book's figure,
our best and mean ± std over seeds, the number of seeds, the wall time and the device.
``--all`` also lists the rows for which the book gives no single number.
"""

import argparse
import json
from pathlib import Path


def rows(results: Path, include_all: bool) -> list[str]:
    """One Markdown row per record, chapter by chapter."""
    out = []
    for path in sorted(results.glob("ch*.json")):
        for r in json.loads(path.read_text()):
            if r.get("book") is None and not include_all:
                continue
            unit = r.get("unit", "%")
            fmt = (lambda v: "–" if v is None else f"{v:.2f}%") if unit == "%" else (
                lambda v: "–" if v is None else f"{v:.4g} {unit}".rstrip())
            mean = "–" if r.get("mean") is None else f"{r['mean']:.2f} ± {r['std']:.2f}"
            out.append(f"| {r['id']} | {fmt(r.get('book'))} | {fmt(r.get('best'))} | {mean} | "
                       f"{len(r.get('seeds', []))} | {r.get('wall_s', 0):.0f} | {r.get('device', '')} |")
    return out


def main(argv=None) -> str:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="directory holding the chN.json files")
    p.add_argument("--all", action="store_true", help="also rows without a number from the book")
    args = p.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        raise SystemExit(f"error: no results directory {results}; run an experiment first, "
                         "e.g. python -m experiments.ch1")
    table = "\n".join(["| id | book | ours best | mean ± std | seeds | wall s | device |",
                       "|---|---|---|---|---|---|---|", *rows(results, args.all)])
    print(table)
    return table


if __name__ == "__main__":
    main()
