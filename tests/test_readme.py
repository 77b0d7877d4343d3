"""README.md: its commands and its first program run as written and do what it says."""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.testing.compare import compare_images

REPO_ROOT = Path(__file__).resolve().parents[1]
README = (REPO_ROOT / "README.md").read_text()


@pytest.mark.mnist
@pytest.mark.slow
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
    assert commands == ["train", "test"]
    assert all(re.search(rf"^{c}:", MAKEFILE, flags=re.M) for c in commands)


def quick_start_commands() -> list[str]:
    """Every command line of the bash blocks of the README's Quick start, comments removed."""
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()
            if line.strip()]


def as_run_here(command: str, out: Path) -> list[str]:
    """The shell lines ``command`` runs, with this interpreter in place of .venv's: a ``make``
    target's recipe from the Makefile; /tmp/try becomes a folder of the test's own."""
    python = sys.executable
    if command.startswith("make "):
        target = command.split()[1]
        recipe = re.search(rf"^{target}:.*\n((?:\t.*\n)+)", MAKEFILE, flags=re.M).group(1)
        lines = [line.strip().replace("$(VENV)/bin/python", python) for line in recipe.splitlines()]
    else:
        lines = [command.replace(".venv/bin/python", python)]
    return [line.replace("/tmp/try", str(out)) for line in lines]


MAKEFILE = (REPO_ROOT / "Makefile").read_text()


def test_the_quick_start_shows_the_commands_this_test_runs():
    commands = quick_start_commands()
    assert commands[:2] == ["make train", "make test"]
    assert any("experiments.ch3 --quick" in c for c in commands) and len(commands) >= 5


@pytest.mark.mnist
@pytest.mark.slow
def test_every_quick_start_command_runs_as_written(mnist_dir, tmp_path):
    """Every command of the Quick start (but ``make test``, which runs this), in a copy of the
    results folder, so that the report and the figures are rewritten there, not in the repo."""
    work = tmp_path / "clone"
    shutil.copytree(REPO_ROOT / "results", work / "results")
    env = {**os.environ, "NNJAX_DATA_DIR": str(mnist_dir), "PYTHONPATH": str(REPO_ROOT)}
    for command in quick_start_commands():
        if command == "make test":
            continue
        for line in as_run_here(command, tmp_path / "try"):
            result = subprocess.run(line, shell=True, cwd=work, env=env, capture_output=True,
                                    text=True, timeout=600)
            assert result.returncode == 0, \
                f"{command!r} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    # make train
    assert json.loads((work / "results" / "train" / "ch1.json").read_text())[0]["id"] == "1a"
    assert (work / "results" / "REPORT.md").exists()
    # redrawing unchanged results redraws the same figures after `figures` and `report`: the
    # same bytes on the machine that drew them; another CPU model may round a few antialiased
    # pixels otherwise (one pixel of bench_members.png on the Xeon VM, RMS 0.002 of 255)
    changed = [p.name for p in (REPO_ROOT / "results").glob("*.png")
               if p.read_bytes() != (work / "results" / p.name).read_bytes()
               and compare_images(str(p), str(work / "results" / p.name), tol=0.1) is not None]
    assert not changed, f"redrawn figures differ from the committed ones: {changed}"
    ch3 = {r["id"]: r for r in json.loads((tmp_path / "try" / "ch3.json").read_text())}
    assert set(ch3) >= {"3a", "3n", "3r", "S-sweep"} and all(r["quick"] for r in ch3.values())
    assert (tmp_path / "try" / "ch3_multiple_eta.png").exists()
