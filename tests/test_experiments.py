"""Every experiment script's --quick variant runs end to end and writes its results."""

import json

import pytest

from experiments import ch1, ch2

REQUIRED = {"id", "book", "metric", "config", "wall_s", "device", "jax_version"}


@pytest.mark.mnist
@pytest.mark.slow
def test_ch1_quick(mnist_dir, tmp_path, capsys):
    records = ch1.main(["--quick", "--only", "1a,1e,B1,B2", "--out", str(tmp_path),
                        "--data-dir", str(mnist_dir), "--quiet"])
    saved = json.loads((tmp_path / "ch1.json").read_text())
    assert [r["id"] for r in saved] == ["1a", "1e", "B1", "B2"] == [r["id"] for r in records]
    for r in saved:
        assert REQUIRED | {"best", "mean", "std", "per_seed"} <= set(r)
    one_a = saved[0]
    assert one_a["config"]["epochs"] == 1 and one_a["config"]["sizes"] == [784, 30, 10]
    assert len(one_a["per_seed"][0]["history"]["evaluation_accuracy"]) == 1
    assert saved[3]["best"] == pytest.approx(22.25)  # B2: average darkness, exactly the book's
    assert "| 1a | 95.42% (not comparable) |" in (tmp_path / "ch1.md").read_text()  # a smoke run
    assert all(r["quick"] for r in saved)


@pytest.mark.mnist
def test_ch1_refuses_unknown_ids(mnist_dir, tmp_path):
    with pytest.raises(SystemExit, match="unknown run id"):
        ch1.main(["--quick", "--only", "1z", "--out", str(tmp_path), "--data-dir", str(mnist_dir)])


@pytest.mark.mnist
@pytest.mark.slow
def test_ch2_quick(mnist_dir, tmp_path):
    records = ch2.main(["--quick", "--out", str(tmp_path), "--data-dir", str(mnist_dir)])
    by_id = {r["id"]: r for r in records}
    # thousands of forward passes cost far more than one backprop
    assert by_id["2-speed"]["best"] > 100
    assert by_id["2-fd-error"]["best"] < 1e-4
    assert by_id["2-autodiff"]["best"] < 1e-12
    assert json.loads((tmp_path / "ch2.json").read_text())[0]["id"] == "2-speed"



@pytest.mark.mnist
def test_finished_records_are_written_when_a_later_run_fails(mnist_dir, tmp_path, monkeypatch,
                                                             capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a later run")

    monkeypatch.setattr(ch1.numpy_baselines, "average_darkness", broken)
    with pytest.raises(RuntimeError, match="a bug in a later run"):
        ch1.main(["--quick", "--only", "1e,B2", "--out", str(tmp_path), "--data-dir",
                  str(mnist_dir), "--quiet"])
    assert [r["id"] for r in json.loads((tmp_path / "ch1.json").read_text())] == ["1e"]
    assert "saved the 1 finished record(s)" in capsys.readouterr().err


@pytest.mark.mnist
def test_a_modified_run_says_so_and_is_not_compared(mnist_dir, tmp_path):
    ch1.main(["--quick", "--only", "1a", "--set", "eta=2.0", "--out", str(tmp_path), "--data-dir",
              str(mnist_dir), "--quiet"])
    (saved,) = json.loads((tmp_path / "ch1.json").read_text())
    assert saved["modified"] == ["eta=2.0"] and saved["config"]["eta"] == 2.0
    row = next(line for line in (tmp_path / "ch1.md").read_text().splitlines()
               if line.startswith("| 1a |"))
    # one seed
    assert "95.42% (not comparable)" in row and "modified: --set eta=2.0" in row and "| 1 |" in row
