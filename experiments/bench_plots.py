"""The scaling curves, drawn from a saved bench_scaling.json (never re-measures).

    python -m experiments.bench_plots [results/bench_scaling.json]

Writes bench_members.png, bench_width.png and bench_data.png next to the JSON: epoch
seconds (wall and process CPU) against the quantity varied, with the time proportional
to the first point (what k separate runs, or linear growth, would take) and the FLOP
floor for comparison. Members and width are drawn log-log, data size linearly.
"""

import json
import sys
from pathlib import Path

from experiments.plotting import plt, save

FIGURES = {  # curve → (x field, x label, log x, file, title)
    "members": ("members", "members k (vmapped into one program)", True, "bench_members.png",
                "[784, 30, 10] ensembles: one epoch of k members"),
    "width": ("hidden", "hidden neurons h", True, "bench_width.png", "[784, h, 10]: one epoch "
                                                                     "against width"),
    "data": ("images", "training images n (one-pixel-shift expansion)", False, "bench_data.png",
             "[784, 30, 10]: one epoch against data size"),
}


def curve(points: list[dict], field: str, xlabel: str, log_x: bool, title: str, subtitle: str,
          path: Path) -> Path:
    x = [p[field] for p in points]
    wall, cpu = [p["seconds"] for p in points], [p["cpu_seconds"] for p in points]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(x, wall, "o-", label="nnjax compiled epoch, wall")
    ax.plot(x, cpu, "s--", label="nnjax compiled epoch, process CPU")
    ax.plot(x, [wall[0] * v / x[0] for v in x], ":", color="gray", label="proportional to the "
                                                                         "first point (wall)")
    ax.plot(x, [p["floor_s"] for p in points], "-", color="k", lw=1,
            label="FLOP floor (large-matmul rate)")
    ax.set(xlabel=xlabel, ylabel="seconds per epoch", title=f"{title}\n{subtitle}")
    if log_x:  # log-log, so that proportional growth is a straight line in every figure
        ax.set_xscale("log", base=2 if field == "members" else 10)
        ax.set_yscale("log")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return save(fig, path)


def plot_all(json_path) -> list[Path]:
    """Every scaling curve saved in ``json_path``; returns the PNG paths written."""
    path = Path(json_path)
    result = json.loads(path.read_text())
    env = result["environment"]
    subtitle = (f"mini-batch 10; {env['device']}, {env['machine']}; jax {env['jax_version']}; "
                f"load {result['load_average_before'][0]}→{result['load_average_after'][0]}")
    return [curve(result["curves"][name], field, xlabel, log_x, title, subtitle, path.parent / file)
            for name, (field, xlabel, log_x, file, title) in FIGURES.items()
            if result["curves"].get(name)]


if __name__ == "__main__":
    print("\n".join(map(str, plot_all(sys.argv[1] if len(sys.argv) > 1
                                      else "results/bench_scaling.json"))))
