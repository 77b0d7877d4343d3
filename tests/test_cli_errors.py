"""Each kind of user mistake ends a chapter script with a short message, status 2, no traceback.

The commands run as a user runs them (``python -m experiments.chN`` in a subprocess), with
MNIST pointed at folders that are empty or hold damaged files: none of these needs the real
data, and each must stop before any would load.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import ch1, cli
from nnjax import data

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_script(module: str, *argv: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NNJAX_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", module, *argv], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def empty_dir(tmp_path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


@pytest.fixture
def damaged_dir(tmp_path) -> Path:
    """The four MNIST names, each holding bytes that are not an IDX file."""
    folder = tmp_path / "damaged"
    folder.mkdir()
    for name in data.FILE_NAMES:
        (folder / name).write_bytes(b"not an IDX file")
    return folder


def assert_short_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    """Status 2, at most three lines on stderr starting with "error:", no traceback, and the
    expected words."""
    assert result.returncode == cli.USAGE_STATUS, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert 1 <= len(lines) <= 3 and lines[0].startswith("error: "), result.stderr
    for text in expected:
        assert text in result.stderr, (text, result.stderr)


def test_missing_data_names_the_files_and_the_fix(empty_dir, tmp_path):
    result = run_script("experiments.ch1", "--quick", "--out", str(tmp_path / "out"),
                        data_dir=empty_dir)
    assert_short_error(result, *data.FILE_NAMES, "NNJAX_DATA_DIR", "--data-dir")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_damaged_data(damaged_dir, tmp_path):
    result = run_script("experiments.ch3", "--quick", "--only", "3a", "--out",
                        str(tmp_path / "out"), data_dir=damaged_dir)
    assert_short_error(result, "train-images-idx3-ubyte", "not an IDX file", "--data-dir")


@pytest.mark.slow
def test_bad_set_value(empty_dir):
    assert_short_error(run_script("experiments.ch5", "--quick", "--set", "eta=fast",
                                  data_dir=empty_dir),
                       "--set eta=fast", "float")


@pytest.mark.slow
def test_a_network_that_cannot_fit_mnist_is_refused_before_loading_data(empty_dir):
    # the data folder is empty: had the script loaded MNIST first, the error would be about files
    result = run_script("experiments.ch3", "--quick", "--only", "3a", "--set", "sizes=784,30,5",
                        data_dir=empty_dir)
    assert_short_error(result, "sizes=784,30,5", "10 neurons")
    result = run_script("experiments.ch1", "--quick", "--set", "sizes=100,30,10",
                        data_dir=empty_dir)
    assert_short_error(result, "784")


@pytest.mark.slow
def test_unknown_id_lists_the_known_ones(empty_dir):
    result = run_script("experiments.ch6", "--only", "6z", data_dir=empty_dir)
    assert_short_error(result, "6z", "6a, 6b", "docs/book.md")


@pytest.mark.slow
def test_existing_checkpoints_without_resume(empty_dir, tmp_path):
    old = tmp_path / "ckpt" / "1a" / "seed0"
    old.mkdir(parents=True)
    # its name is enough: the refusal comes before any is read
    (old / "epoch-000001.ckpt").write_bytes(b"")
    result = run_script("experiments.ch1", "--quick", "--checkpoint-dir", str(tmp_path / "ckpt"),
                        data_dir=empty_dir)
    assert_short_error(result, "already holds checkpoints", "--resume")


def test_damaged_checkpoint_on_resume(tmp_path, monkeypatch, capsys):
    old = tmp_path / "ckpt" / "1a" / "seed0"
    old.mkdir(parents=True)
    (old / "epoch-000001.ckpt").write_bytes(b"not a checkpoint")
    monkeypatch.setattr(data, "load_mnist", lambda *a, **k: fake_mnist())
    with pytest.raises(SystemExit) as info:
        cli.run(ch1.main, ["--quick", "--only", "1a", "--quiet", "--out", str(tmp_path / "out"),
                           "--checkpoint-dir", str(tmp_path / "ckpt"), "--resume"])
    err = capsys.readouterr().err
    assert info.value.code == cli.USAGE_STATUS and "Traceback" not in err
    assert err.startswith("error: ") and "fix:" in err and len(err.strip().splitlines()) <= 3
    # the reason, from the line after "no intact checkpoint in DIR:"
    assert "not an nnjax checkpoint" in err


def fake_mnist():
    """A tiny MNIST-shaped dataset: enough for the script to reach the checkpoints."""
    split = data.Split(np.zeros((5000, 784), np.float32), np.zeros(5000, np.int32))
    return data.MNIST(split, split, split)


def test_offline_first_run_fails_in_at_most_three_lines(tmp_path, monkeypatch, capsys):
    """No data anywhere and no network: what `make train` meets on an offline machine."""
    monkeypatch.delenv("NNJAX_DATA_DIR", raising=False)
    monkeypatch.setenv("NNJAX_CACHE_DIR", str(tmp_path / "cache"))

    def offline(url):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data, "_urlopen", offline)
    with pytest.raises(SystemExit) as info:
        cli.run(ch1.main, ["--only", "1a", "--seeds", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert info.value.code == cli.USAGE_STATUS and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3, err
    for text in (*data.FILE_NAMES, "NNJAX_DATA_DIR", "--data-dir"):
        assert text in err


def test_ctrl_c_while_loading_data_is_one_line(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "load", interrupted)
    with pytest.raises(SystemExit) as info:
        cli.run(ch1.main, ["--quick", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert info.value.code == cli.INTERRUPT_STATUS  # 130, as Ctrl-C during training
    assert "Traceback" not in err and err.startswith("interrupted") and len(
        err.strip().splitlines()) == 1


@pytest.mark.slow
def test_debug_shows_the_traceback(empty_dir):
    result = run_script("experiments.ch1", "--quick", "--debug", data_dir=empty_dir)
    assert result.returncode == 1 and "Traceback" in result.stderr and "DataError" in result.stderr
