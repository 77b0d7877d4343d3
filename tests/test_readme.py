"""README.md: the first program runs as written and prints what the README says it prints."""

import contextlib
import io
import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.mnist
def test_first_program_trains_as_printed(mnist_dir, monkeypatch):
    section = README.split("## A first program", 1)[1]
    program = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    monkeypatch.setenv("NNJAX_DATA_DIR", str(mnist_dir))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(program, "README first program", "exec"), {"__name__": "readme"})
    correct = [int(v) for v in re.findall(r"\d+", out.getvalue())]
    assert len(correct) == 30  # "correct test images after each epoch", 30 epochs
    assert max(correct) >= 9400  # the book's network reaches about 95% (README, results)


def test_quick_start_commands_exist():
    commands = re.findall(r"^make (\w+)", README, flags=re.M)
    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert commands == ["train", "test"]
    assert all(re.search(rf"^{c}:", makefile, flags=re.M) for c in commands)
