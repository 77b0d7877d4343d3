"""experiments.report and experiments.figures: the reproduction report and figures from saved
results."""

import argparse
import subprocess

import pytest

from experiments import command_line, figures, report, result_files


def ch1_record(id_: str, book, accuracy: list[float]) -> dict:
    """A chapter-1 record as experiments.ch1 saves it, with two seeds of per-epoch accuracy."""
    per_seed = [{"seed": s, "peak": max(accuracy) - s, "accuracy": [a - s for a in accuracy]}
                for s in (0, 1)]
    return {"id": id_, "book": book, "note": "", "metric": "peak",
            **result_files.summary([r["peak"] for r in per_seed]), "seeds": [0, 1],
            "per_seed": per_seed, "config": {"sizes": [784, 30, 10], "eta": 3.0}, "wall_s": 3.0,
            "device": "cpu", "jax_version": "0.0", "machine": "test machine"}


def test_report_lists_every_book_row_with_figures(tmp_path):
    result_files.write_results(tmp_path, "ch1", [ch1_record("1a", 95.42, [90.0, 94.0, 95.5])])
    text = report.main(["--results", str(tmp_path)])
    assert text == (tmp_path / "REPORT.md").read_text()
    assert "| 1a | 95.42% | 95.50% | 95.00 ± 0.50 | 2 | peak | cpu | 3 |" in text
    assert "| 1b | 96.59% | not run |" in text  # a run id with no saved record says so
    assert "| 6l | 99.67% | not run |" in text
    assert "No saved results: run `python -m experiments.ch6`" in text
    assert "![ch1_training](ch1_training.png)" in text
    assert (tmp_path / "ch1_training.png").stat().st_size > 10_000
    assert "Machines: test machine. jax 0.0." in text


def test_report_refuses_bad_options(tmp_path, capsys):
    with pytest.raises(SystemExit):
        report.main(["--results", str(tmp_path / "missing")])
    assert "no results directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        report.main(["--quick"])
    assert "--quick only applies with --run" in capsys.readouterr().err


@pytest.mark.slow
def test_run_writes_quick_results_then_reports(tmp_path, monkeypatch):
    # seconds, no MNIST needed
    monkeypatch.setattr(report, "CHAPTERS", {"ch4": report.CHAPTERS["ch4"]})
    text = report.main(["--run", "--quick", "--results", str(tmp_path)])
    # a smoke run
    assert (tmp_path / "ch4.json").exists() and "| 4a | 0.4 (not comparable) |" in text
    assert "![ch4_steps_bumps](ch4_steps_bumps.png)" in text


def test_figures_skip_chapters_without_results(tmp_path, capsys):
    assert figures.regenerate(tmp_path) == []
    assert "ch1: no" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        figures.main(["--results", str(tmp_path / "missing")])


def test_git_commit_is_dirty_for_changed_code_but_not_for_written_results(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "ch6.json").write_text("[]")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "start")
    head = result_files.git_commit(tmp_path)
    assert len(head) == 40
    (tmp_path / "results" / "ch6.json").write_text("[{}]")  # a run writes its own results
    assert result_files.git_commit(tmp_path) == head
    (tmp_path / "code.py").write_text("x = 2\n")
    assert result_files.git_commit(tmp_path) == head + "-dirty"
    assert result_files.git_commit(tmp_path / "results" / "nowhere") == "unknown"


def test_records_name_the_commit_the_process_started_with(monkeypatch):
    """A run that started at commit a and is written after the checkout moved to b names a."""
    commits = iter(["a" * 40, "b" * 40])
    monkeypatch.setattr(result_files, "git_commit", lambda: next(commits))
    result_files.code_commit.cache_clear()
    try:
        p = argparse.ArgumentParser()
        p.add_argument("--compile-cache", default=None)
        command_line.parse_args(p, [])  # start-up
        assert result_files.environment()["git_commit"] == "a" * 40
        assert next(commits) == "b" * 40  # the checkout has moved on; the record did not ask
    finally:
        result_files.code_commit.cache_clear()


def test_records_name_the_cpu_model(tmp_path):
    """Two 2-core VMs of one project ran chapter 6 twofold apart: the record names the CPU."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Example CPU 9000\n\nprocessor\t: 1\n"
                       "model name\t: Example CPU 9000\n")
    assert result_files.cpu_name(cpuinfo) == "Example CPU 9000"
    assert result_files.cpu_name(tmp_path / "missing") != ""
    machine = result_files.machine()
    assert result_files.cpu_name() in machine == result_files.environment()["machine"]


def test_table_footers_say_where_their_own_records_ran():
    base = {"id": "6f", "best": 99.0, "mean": 99.0, "std": 0.0, "seeds": [0], "metric": "peak",
            "wall_s": 1.0, "jax_version": "0.4.1", "machine": "x86_64, 2 cores, Linux"}
    records = [base | {"device": "cpu:cpu"},  # the device name records used to be written with
               base | {"id": "6g", "device": "cpu"},
               base | {"id": "6k", "device": "gpu: NVIDIA H200", "jax_version": "0.10.2",
                       "machine": "x86_64, 16 cores, Linux"}]
    footer = result_files.markdown_table(records).splitlines()[-1]
    assert footer == ("Data: MNIST. Device: cpu / gpu: NVIDIA H200; jax 0.4.1 / 0.10.2; "
                      "x86_64, 2 cores, Linux / x86_64, 16 cores, Linux.")
    other = result_files.markdown_table([r | {"dataset": "kmnist"} for r in records[:2]])
    assert other.splitlines()[-1] == "Device: cpu; jax 0.4.1; x86_64, 2 cores, Linux."


def test_chapter_6_lists_every_network_by_seed():
    def network(seed: int, test: list[float]) -> dict:
        best = seed  # epoch of best validation, counted from 0
        return {"seed": seed, "seeds": [seed], "best_validation_epoch": best,
                "best_validation": 99.5 + seed / 10, "test_at_best_validation": test[best],
                "errors": [[i, 7, 1] for i in range(round(100 * (100 - test[best])))],
                "final_test": test[-1], "peak_test": max(test), "wall_s": 5400.0 * (seed + 1),
                "history": {"test_accuracy": test}}
    per_seed = [network(0, [99.5, 99.55, 99.4]), network(1, [99.3, 99.64, 99.6])]
    rec = {"id": "6k", "book": 99.6, "note": "", "metric": "test_at_best_validation",
           **result_files.summary([s["test_at_best_validation"] for s in per_seed]),
           "seeds": [0, 1], "per_seed": per_seed, "config": {}, "wall_s": 16200.0,
           "device": "cpu:cpu", "jax_version": "0.0", "machine": "test machine"}
    text = "\n".join(report.chapter_rows("ch6", [rec]) + report.networks_section([rec]))
    # the row names the device as records are written now ("cpu", not "cpu:cpu")
    assert ("| 6k | 99.60% | 99.64% | 99.57 ± 0.07 | 2 | test_at_best_validation | cpu | 16200 |"
            in text)
    assert "| 6k | 0 | 3 | 0 | 99.50% | 99.50% | 50 | 99.40% | 99.55% | 1.50 |" in text
    assert "| 6k | 1 | 3 | 1 | 99.60% | 99.64% | 36 | 99.60% | 99.64% | 3.00 |" in text


def test_a_separately_trained_ensemble_is_one_line_of_its_members_seeds():
    # 6l voted from stored 6k members: each member at its own best-validation epoch, so the
    # vote has neither an epoch of best validation nor a per-epoch test history of its own
    vote = {"seed": 0, "seeds": [0, 1, 2, 3, 4], "best_validation": 99.65,
            "test_at_best_validation": 99.61, "errors": [[i, 7, 1] for i in range(39)],
            "final_test": 99.58, "epochs_done": 40, "wall_s": 7200.0,
            "history": {"member_test_accuracy": [[99.5] * 5] * 40}}
    assert (report.network_line("6l", vote)
            == "| 6l | 0–4 | 40 | each member's | 99.65% | 99.61% | 39 | 99.58% | – | 2.00 |")
