"""What every chapter's figure module shares: matplotlib without a display, and saving.

Figures are drawn from saved results only (plotting never retrains) and written as PNG
without a timestamp or version stamp, so that redrawing unchanged results rewrites the
same bytes (and leaves git clean).
"""

import json
import os
from pathlib import Path

import matplotlib
from matplotlib.ticker import MaxNLocator

# keep a backend chosen already, e.g. a Jupyter kernel's inline one
if not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")  # no display: render straight to files
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, path: Path) -> Path:
    """Lay out, write ``fig`` to ``path`` as PNG and free it; return the path. Axes over
    epochs get whole-number ticks (a 2-epoch smoke run would otherwise show 1.25, 1.5, …)."""
    for ax in fig.axes:
        if ax.get_xlabel().startswith("epoch"):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return path


def load_records(json_path) -> tuple[dict, Path]:
    """The records of a saved chN.json by id, and the folder the figures go to (beside it)."""
    json_path = Path(json_path)
    return {r["id"]: r for r in json.loads(json_path.read_text())}, json_path.parent
