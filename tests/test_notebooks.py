"""The chapter notebooks run from top to bottom at their small default size.

Each notebook is jupytext percent-format text (notebooks/chN.py). It is read into a
notebook and executed cell by cell in a fresh kernel whose working directory is the
repository root, with this checkout first on PYTHONPATH, so it imports the nnjax and
experiments being tested. An exception in any cell fails the test (nbclient raises
CellExecutionError with the cell's traceback), and so does a cell that runs longer than
CELL_TIMEOUT_S. Figures are drawn by the inline backend, and every notebook must show
at least one. Notebooks that load MNIST get it through the `mnist_dir` fixture, which
fails (never skips) when the files are missing.
"""

import os
from pathlib import Path

import jupytext
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

REPO_ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("ch*.py"))
CELL_TIMEOUT_S = 300  # per cell; the slowest small-size cell takes seconds


@pytest.fixture
def kernel_env(monkeypatch):
    """The environment the kernel inherits: this checkout importable, inline figures, small size."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                                   os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.delenv("NNJAX_FULL", raising=False)
    return monkeypatch


def execute(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` in a new python3 kernel started in the repository root."""
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO_ROOT)}})
    return client.execute()


def images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells if cell.cell_type == "code"
               for out in cell.outputs)


def test_there_is_one_notebook_per_chapter():
    assert [p.name for p in NOTEBOOKS] == [f"ch{n}.py" for n in range(1, 7)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.slow
def test_notebook_runs(path, kernel_env, request):
    nb = jupytext.read(path)
    if "load_mnist" in path.read_text():
        kernel_env.setenv("NNJAX_DATA_DIR", str(request.getfixturevalue("mnist_dir")))
    executed = execute(nb)
    assert images(executed) >= 1, f"{path.name} showed no figure"


def test_a_failing_cell_fails_the_run(kernel_env):
    """The check above can fail: an exception in a cell stops the run and names the error."""
    nb = jupytext.reads("# %%\nx = 1\n\n# %%\nraise ValueError('broken cell')\n", fmt="py:percent")
    with pytest.raises(CellExecutionError, match="broken cell"):
        execute(nb)
