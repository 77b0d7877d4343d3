"""The book's milestone networks on another data set, beside their MNIST figures.

    python -m experiments.ladder [--dataset fashion-mnist] [--quick] [--full] [--only 1a,3b]
                                 [--seeds N] [--out DIR] [--mnist-results DIR] [--data-dir DIR]
                                 [--merge] [--resume] [--checkpoint-dir DIR]

Trains the milestones 1a, 3b, 3h, 5b, 6b, 6f and 6g (the chapter scripts' configs and
training code) on the chosen data and writes DIR/ladder_<data set>.json and .md: one
table with, for each network, our figure on that data beside our MNIST figure for the
same network (read from the saved DIR_MNIST/chN.json records, default ``results``) and
the book's. Each row keeps its chapter's metric: the peak test accuracy (1a, 3b), the
peak validation accuracy (3h, 5b), or the test accuracy at the epoch of best validation
accuracy (6b, 6f, 6g). 6g is 6f trained on chapter 6's expanded data (each training
image and its four one-pixel shifts, 250,000 images), five times 6f's work per epoch.

The fully connected rows run at the book's settings. The conv rows run at most 15
epochs (the book's 60 take hours each on a CPU; 6g's 15 about an hour on a 2-core one);
``--full`` runs them at the book's settings. Like chapter 6's, they keep checkpoints
outside the work tree (``--checkpoint-dir``, default $NNJAX_RUNS_DIR else
~/.cache/nnjax/runs) and store each finished network under DIR/ch6_networks, so that
``--resume`` continues an interrupted row, or reuses a network chapter 6's own script
trained at the same settings (``experiments.ch6 --dataset D --only 6g --set epochs=15``),
instead of training it again. ``--merge`` keeps the saved rows of milestones not run this
time. ``--quick`` is a seconds-long smoke run of every row.
"""

import argparse
import dataclasses
import json
import os
from pathlib import Path

from experiments import ch1, ch3, ch5, ch6, command_line, common, interrupts, result_files
from nnjax import data

MILESTONES = ("1a", "3b", "3h", "5b", "6b", "6f", "6g")
CHAPTERS = {"1a": ch1, "3b": ch3, "3h": ch3, "5b": ch5, "6b": ch6, "6f": ch6, "6g": ch6}
CPU_CONV_EPOCHS = 15  # the conv rows' epochs without --full


def milestone(id_: str, dataset: str, *, quick: bool, full: bool):
    """The chapter script's config of milestone ``id_`` on ``dataset``: as the book runs it,
    conv nets cut to `CPU_CONV_EPOCHS` unless ``full``, shrunk by the chapter's ``quick``."""
    module = CHAPTERS[id_]
    cfg = next(c for c in module.RUNS if c.id == id_)
    if module is ch6 and not full:
        cfg = dataclasses.replace(cfg, epochs=min(cfg.epochs, CPU_CONV_EPOCHS))
    cfg = module.quick(cfg) if quick else cfg
    return dataclasses.replace(cfg, dataset=dataset, seeds=None)


def train_row(cfg, dataset: data.MNIST, seeds: list[int], verbose: bool,
              conv_options: dict) -> dict:
    """The results record of one milestone, trained by its chapter's own code; conv rows with
    chapter 6's checkpoints and stored networks (``conv_options``: `ch6.run`'s root, store
    and resume)."""
    if isinstance(cfg, ch6.ConvConfig):
        record, _ = ch6.run(cfg, ch6.prepare_data(cfg, dataset), seeds, verbose, **conv_options)
        return record
    return result_files.make_record(cfg, common.run_seeds(cfg, dataset, seeds, verbose=verbose),
                                    metric="peak")


def mnist_figures(results: Path) -> dict[str, dict]:
    """Our saved MNIST records of the milestones, by id (those not run yet are absent)."""
    found = {}
    for chapter in sorted({m.__name__.rsplit(".", 1)[-1] for m in CHAPTERS.values()}):
        path = results / f"{chapter}.json"
        if path.exists():
            found |= {r["id"]: r for r in json.loads(path.read_text())
                      if r["id"] in MILESTONES and result_files.on_mnist(r)}
    return found


def percent_cell(value) -> str:
    return "–" if value is None else f"{value:.2f}%"


def ladder_table(records: list[dict], mnist: dict[str, dict]) -> str:
    """One row per milestone: our figure on the new data beside our MNIST figure and the book's."""
    dataset = records[0]["dataset"] if records else ""
    lines = [f"| id | network | epochs | metric | {dataset} best | {dataset} mean ± std | seeds | "
             "MNIST ours best | MNIST book | wall s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        c, m = r["config"], mnist.get(r["id"], {})
        net = ("conv " + ",".join(map(str, c["convs"])) + " → FC " + ",".join(map(str, c["fc"]))
               if "convs" in c else "FC " + ",".join(map(str, c["sizes"])))
        if c.get("expand", "none") != "none":
            net += f", {c['expand']} expanded data"
        _, best, ms = result_files.formatted(r)
        metric = f"{r['metric']} {c['evaluate_on']}" if "evaluate_on" in c else r["metric"]
        book = m.get("book", r.get("book"))  # a row whose MNIST run is not saved yet: its own
        lines.append(f"| {r['id']} | {net} | {c['epochs']} | {metric} | {best} | {ms} | "
                     f"{len(r['seeds'])} | {percent_cell(m.get('best'))} | "
                     f"{percent_cell(book)} | {r['wall_s']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[dict]:
    p = command_line.Parser(description=__doc__.splitlines()[0],
                            epilog="\n".join(__doc__.splitlines()[2:]),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=data.DATASETS, default="fashion-mnist",
                   help="the data to train on (default fashion-mnist)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke version of every row")
    p.add_argument("--full", action="store_true",
                   help=f"conv rows at the book's 60 epochs (default: at most {CPU_CONV_EPOCHS}, "
                        "hours less on a CPU)")
    p.add_argument("--only", default=None, help="comma-separated milestones to run (default all: "
                                                f"{','.join(MILESTONES)})")
    p.add_argument("--seeds", type=command_line.positive_int, default=1, help="seeds per row "
                                                                              "(default 1): seeds "
                                                                              "0..N-1")
    p.add_argument("--out", default="results", help="directory for ladder_<data set>.json and .md "
                                                    "(default results)")
    p.add_argument("--mnist-results", default="results", metavar="DIR",
                   help="where the saved MNIST records chN.json are (default results)")
    p.add_argument("--data-dir", default=None, help="the data set's folder (default: its variable, "
                                                    "the cache, a system package's folder, else a "
                                                    "download)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.add_argument("--merge", action="store_true", help="keep the saved rows of milestones not "
                                                        "run this time")
    p.add_argument("--checkpoint-dir", metavar="DIR", default=None,
                   help="where conv rows keep their checkpoints (default: $NNJAX_RUNS_DIR, else "
                        "~/.cache/nnjax/runs; under --quick none unless given)")
    p.add_argument("--resume", action="store_true",
                   help="continue conv rows from their checkpoints, or reuse their stored networks "
                        "in DIR/ch6_networks")
    p.add_argument("--compile-cache", metavar="DIR",
                   default=os.environ.get(command_line.COMPILE_CACHE_ENV) or None,
                   help="keep compiled programs in DIR (default: "
                        f"${command_line.COMPILE_CACHE_ENV}, else none)")
    args = command_line.parse_args(p, argv, default_checkpoints=True)
    ids = command_line.parse_only(args.only, MILESTONES)
    configs = [milestone(i, args.dataset, quick=args.quick, full=args.full) for i in MILESTONES
               if i in ids]
    seeds = list(range(args.seeds))
    root = ch6.checkpoint_root(args)
    conv_options = dict(root=root, store=Path(args.out) / ch6.STORE, resume=args.resume)
    if root and not args.resume:
        ch6.refuse_existing(p, [j for c in configs if isinstance(c, ch6.ConvConfig)
                                for s in seeds for j in ch6.jobs_of(c, s, root,
                                                                    conv_options["store"])])
    dataset = data.load(args.dataset, args.data_dir)
    name = f"ladder_{args.dataset}"
    with interrupts.saving_on_interrupt(args, name, MILESTONES) as records:
        for cfg in configs:
            records.append(train_row(cfg, dataset, seeds, not args.quiet, conv_options))
    saved = (result_files.merge_saved(args.out, name, records, MILESTONES) if args.merge
             else records)
    cut = [r["id"] for r in saved if "convs" in r["config"] and not r.get("quick")
           and r["config"]["epochs"] == CPU_CONV_EPOCHS]
    conv = (f"Conv rows ({', '.join(cut)}) ran {CPU_CONV_EPOCHS} of the book's 60 epochs on "
            "this CPU; `--full` runs all 60.\n\n") if cut else ""
    table = ladder_table(saved, mnist_figures(Path(args.mnist_results)))
    path = result_files.write_results(args.out, name, saved,
                                extra_md=f"{conv}Beside our MNIST figures for the same "
                                         f"networks:\n\n{table}")
    print(conv + table)
    print(f"wrote {path}")
    return records


if __name__ == "__main__":
    main()
