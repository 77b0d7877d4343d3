"""Smoke test of `python -m experiments.ch3 --quick` and its figures (seconds, real MNIST)."""

import json

import pytest

from experiments import ch3

pytestmark = pytest.mark.mnist


@pytest.mark.slow
def test_quick_run_writes_records_and_figures(tmp_path, mnist_dir):
    only = "3a,3d,3c,3k,3m,X-eta-schedule,3i,3j,S-sweep"
    ch3.main(["--quick", "--quiet", "--out", str(tmp_path), "--only", only, "--svm-max", "100",
              "--data-dir", str(mnist_dir)])
    records = {r["id"]: r for r in json.loads((tmp_path / "ch3.json").read_text())}
    assert set(records) == {"3a", "3d", "3c", "3k/large", "3k/default", "3m/eta=0.025",
                            "3m/eta=0.25", "3m/eta=2.5", "X-eta-schedule", "3i", "3j", "S-sweep"}
    for id_ in ("3a", "3c", "3k/default", "3m/eta=0.25"):
        r = records[id_]
        assert 10.0 < r["best"] <= 100.0 and r["jax_version"] and r["device"]
        assert len(r["per_seed"][0]["accuracy"]) == r["config"]["epochs"]
    assert records["3m/eta=2.5"]["config"]["eta"] == 2.5 and records["3m/eta=2.5"][
        "sweep_members"] == 3
    assert len(records["3m/eta=0.025"]["per_seed"][0]["history"]["training_cost"]) == 2
    assert records["3c"]["config"]["lmbda"] == 0 and records["3k/large"]["config"]["lmbda"] == 5.0
    assert "learning_rate" in records["X-eta-schedule"]["per_seed"][0]["history"]
    assert [p["n"] for p in records["3i"]["curve"]] == [100, 500]
    assert [p["n"] for p in records["3j"]["curve"]] == [100]
    assert records["S-sweep"]["timing"]["sweep_total_s"] > 0
    assert "3d: final training" in (tmp_path / "ch3.md").read_text()
    for name in ("overfitting", "init", "multiple_eta", "more_data", "ours"):
        assert (tmp_path / f"ch3_{name}.png").stat().st_size > 10_000

    # --merge keeps the other records and replaces the ones run again
    ch3.main(["--quick", "--quiet", "--out", str(tmp_path), "--only", "3b", "--merge", "--no-plots",
              "--data-dir", str(mnist_dir)])
    merged = {r["id"] for r in json.loads((tmp_path / "ch3.json").read_text())}
    assert merged == set(records) | {"3b"}


def test_unknown_id_is_refused():
    with pytest.raises(SystemExit, match="unknown run id"):
        ch3.main(["--only", "3z", "--quick"])


@pytest.mark.slow
def test_a_diverging_run_is_a_recorded_result(tmp_path, mnist_dir):
    """3n at its quick size overflows (decay factor 1 − ηλ/n = −9): recorded, and the script goes
    on."""
    ch3.main(["--quick", "--quiet", "--no-plots", "--out", str(tmp_path), "--only", "3n,3r",
              "--data-dir", str(mnist_dir)])
    records = {r["id"]: r for r in json.loads((tmp_path / "ch3.json").read_text())}
    (seed,) = records["3n"]["per_seed"]
    assert seed["diverged"]["step"] is not None and "training stopped at step" in seed["diverged"][
        "message"]
    assert records["3n"]["best"] is None and records["3r"]["best"] > 0  # the next run still ran
    assert f"seed 0 diverged at step {seed['diverged']['step']} (NaN guard)" in (
        tmp_path / "ch3.md").read_text()
