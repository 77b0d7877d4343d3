"""Smoke test of `python -m experiments.ch5 --quick` and its figures (seconds, real MNIST)."""

import json

import pytest

from experiments import ch5

pytestmark = pytest.mark.mnist


@pytest.mark.slow
def test_quick_run_writes_records_and_figures(tmp_path, mnist_dir):
    ch5.main(["--quick", "--quiet", "--out", str(tmp_path), "--data-dir", str(mnist_dir)])
    records = {r["id"]: r for r in json.loads((tmp_path / "ch5.json").read_text())}
    assert set(records) == {"5a", "5b", "5c", "5d", "5e", "5f 2 hidden", "5f 4 hidden", "5g",
                            "5h relu/he"}
    assert records["5d"]["config"]["lmbda"] == 5.0 and records["5d"]["config"]["init"] == "default"
    assert records["5a"]["book"] == 96.48 and 10.0 < records["5a"]["best"] <= 100.0
    init = records["5e"]["speeds_at_init"]
    assert set(init) == {"2", "4"} and len(init["4"]["mean"]) == 4
    assert init["4"]["mean"][0] < init["4"]["mean"][-1]  # the first hidden layer is the slowest
    run = records["5f 4 hidden"]["per_seed"][0]
    assert len(run["speeds"]) == ch5.QUICK_SPEED.epochs + 1 and len(run["speeds"][0]) == 4
    assert records["5g"]["best"] == pytest.approx(0.45, abs=0.005)
    assert "Speed of learning" in (tmp_path / "ch5.md").read_text()
    # 5e reads 5f's runs before their first update
    assert run["speeds"][0] == init["4"]["per_seed"][0]
    for name in ("accuracy", "speed_init", "speed_training", "chain", "beyond"):
        assert (tmp_path / f"ch5_{name}.png").stat().st_size > 10_000

    ch5.main(["--quick", "--quiet", "--out", str(tmp_path), "--only", "5g", "--merge",
              "--no-plots"])
    assert {r["id"] for r in json.loads((tmp_path / "ch5.json").read_text())} == set(records)


def test_unknown_id_is_refused():
    with pytest.raises(SystemExit, match="unknown run id"):
        ch5.main(["--quick", "--only", "5z"])
