"""Every chapter's figures and the benchmark's scaling curves, redrawn from saved results (never
trains).

    python -m experiments.figures [--results DIR] [--data-dir DIR]

Reads DIR/chN.json and DIR/bench_scaling.json (default ``results``) and writes the PNGs
beside them with each one's plot module; a missing results file is skipped with a note.
Chapter 6's grid of misclassified digits needs MNIST's test images (``--data-dir`` or
``$NNJAX_DATA_DIR``); chapter 2 reports numbers only.
"""

import time
from functools import partial
from pathlib import Path

from experiments import (
    bench_plots,
    ch1_plots,
    ch3_plots,
    ch4_plots,
    ch5_plots,
    ch6_plots,
    cli,
    command_line,
)


def plotters(data_dir=None) -> dict:
    """Each ``plot_all(json_path) -> [png paths]``, by the name of the results file (and of the
    script that writes it)."""
    return {"ch1": ch1_plots.plot_all, "ch3": ch3_plots.plot_all, "ch4": ch4_plots.plot_all,
            "ch5": ch5_plots.plot_all, "ch6": partial(ch6_plots.plot_all, data_dir=data_dir),
            "bench_scaling": bench_plots.plot_all}


def regenerate(results: Path, data_dir=None, verbose: bool = True) -> list[Path]:
    """Redraw every figure whose chapter has saved results in ``results``; return the PNG paths."""
    written = []
    for name, plot_all in plotters(data_dir).items():
        path = results / f"{name}.json"
        if not path.exists():
            if verbose:
                print(f"{name}: no {path}; run python -m experiments.{name} first")
            continue
        written += plot_all(path)
    return written


def main(argv=None) -> list[Path]:
    p = command_line.Parser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="results", help="directory holding the chN.json files "
                                                        "(default: results)")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, "
                                                    "else the cache)")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    args = p.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        p.error(f"no results directory {results}; run an experiment first, e.g. python -m "
                "experiments.ch1")
    start = time.perf_counter()
    written = regenerate(results, args.data_dir)
    for path in written:
        print(f"wrote {path}")
    print(f"{len(written)} figures in {time.perf_counter() - start:.1f} s")
    return written


if __name__ == "__main__":
    cli.run(main)
