"""Smoke test of `python -m experiments.ch4 --quick` and its figures (no MNIST needed)."""

import json

import pytest

from experiments import ch4


@pytest.mark.slow
def test_quick_run_writes_records_and_figures(tmp_path):
    ch4.main(["--quick", "--quiet", "--out", str(tmp_path)])
    records = {r["id"]: r for r in json.loads((tmp_path / "ch4.json").read_text())}
    assert list(records) == ch4.IDS
    assert records["4a"]["best"] <= 0.40 and records["4a"]["book"] == 0.40
    sig = records["4b"]["series"]["sigmoid"]
    assert sig["neurons"] == [2 * n for n in sig["n"]] and sig["max"][-1] <= 0.01 < sig["max"][0]
    assert records["4b"]["best"] == sig["fewest_neurons"] and records["4b"]["unit"] == "neurons"
    assert records["4e"]["two_d"][-1]["max"] < records["4e"]["two_d"][0]["max"]
    assert records["4g"]["per_seed"][0]["history"]["epoch"][-1] == ch4.QUICK.sgd_epochs
    for r in records.values():
        assert r["device"] and r["jax_version"] and r["wall_s"] > 0
    assert "neurons" in (tmp_path / "ch4.md").read_text()
    for name in ("steps_bumps", "approximations", "errors", "towers"):
        assert (tmp_path / f"ch4_{name}.png").stat().st_size > 10_000

    ch4.main(["--quick", "--quiet", "--out", str(tmp_path), "--only", "4a", "--merge",
              "--no-plots"])
    assert [r["id"] for r in json.loads((tmp_path / "ch4.json").read_text())] == ch4.IDS


def test_unknown_id_is_refused():
    with pytest.raises(SystemExit, match="unknown run id"):
        ch4.main(["--quick", "--only", "4z"])
