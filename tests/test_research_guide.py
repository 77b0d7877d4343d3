"""docs/research.md: every Python recipe runs as written and stays within 20 lines."""

import contextlib
import io
import re
from pathlib import Path

import pytest

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "research.md"
RECIPES = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_guide_has_its_recipes():
    assert len(RECIPES) == 4


@pytest.mark.mnist
@pytest.mark.parametrize("index", range(len(RECIPES)))
@pytest.mark.slow
def test_recipe_runs(index, mnist_dir, monkeypatch):
    recipe = RECIPES[index]
    assert len(recipe.strip().splitlines()) <= 20
    monkeypatch.setenv("NNJAX_DATA_DIR", str(mnist_dir))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(recipe, f"{GUIDE.name} recipe {index + 1}", "exec"), {"__name__": "recipe"})
    printed = out.getvalue()
    assert printed.strip(), "every recipe prints its result"
    if index == 0:  # hand-derived softplus backprop agrees with jax.grad
        assert float(printed) < 1e-5
