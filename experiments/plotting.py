"""What every chapter's figure module shares: matplotlib without a display, and saving.

Figures are drawn from saved results only (plotting never retrains) and written as PNG.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: render straight to files
import matplotlib.pyplot as plt  # noqa: E402


def save(fig, path: Path) -> Path:
    """Lay out, write ``fig`` to ``path`` as PNG and free it; return the path."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
