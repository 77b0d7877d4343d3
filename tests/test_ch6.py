"""experiments.ch6: the --quick smoke run end to end, its results files and figures, and option
checks."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from experiments import ch6, ch6_plots, result_files, run_config
from nnjax import checkpoint, data, ensemble


@pytest.mark.mnist
@pytest.mark.slow
def test_quick_run_writes_records_filters_and_figures(tmp_path, mnist_dir):
    records = ch6.main(["--quick", "--only", "6c,6l", "--out", str(tmp_path), "--quiet",
                        "--data-dir", str(mnist_dir)])
    saved = json.loads((tmp_path / "ch6.json").read_text())
    assert [r["id"] for r in saved] == ["6c", "6l"] == [r["id"] for r in records]
    for r in saved:
        run = r["per_seed"][0]
        assert r["metric"] == "test_at_best_validation" and 0 <= r["best"] <= 100
        # 500 test images in --quick
        assert len(run["errors"]) == round((100 - r["best"]) * 500 / 100)
        assert r["config"]["epochs"] == 1 and r["config"]["train_size"] == 200
        assert run["git_commits"] and r["git_commit"]
        assert run["machines"] == [result_files.machine()]
    single, ens = saved
    run = single["per_seed"][0]
    assert single["best"] == run["history"]["test_accuracy"][run["best_validation_epoch"]]
    assert ens["config"]["members"] == 2 and ens["per_seed"][0]["seeds"] == [0,
        1] and ens["ensemble"] == "separate"
    assert len(ens["per_seed"][0]["history"]["member_test_accuracy"][0]) == 2
    assert len(ens["per_seed"][0]["member_test_at_best_validation"]) == 2
    assert ens["train_images"] == 1000  # 200 images and their 4 shifts
    assert (tmp_path / "ch6_6c_filters.npz").exists() and (tmp_path / "ch6.md").exists()
    # drawn by ch6 itself
    assert (tmp_path / "ch6_curves.png").exists() and (tmp_path / "ch6_filters_6c.png").exists()
    assert "smoke run (--quick)" in (tmp_path / "ch6.md").read_text()
    # each member's stored result
    members = [ch6.load_result(tmp_path / f) for f in ens["per_seed"][0]["networks"]]
    assert [m["seeds"] for m in members] == [[0], [1]] and members[0]["predictions"][
        "last_epoch"].shape == (2, 500)
    voted = np.asarray(ensemble.plurality_vote(jnp.asarray([m["predictions"][
        "best_validation_epoch"][1]
                                                            for m in members])))
    test_labels = ch6.prepare_data(ch6.quick(ch6.RUNS[0]), data.load_mnist(mnist_dir))[2][1]
    assert [[i, t, p] for i, t, p in ens["per_seed"][0]["errors"]] == \
        [[int(i), int(test_labels[i]), int(voted[i])]
         for i in np.flatnonzero(voted != np.asarray(test_labels))]
    paths = ch6_plots.main(["--out", str(tmp_path), "--data-dir", str(mnist_dir)])
    assert {p.name for p in paths} == {"ch6_errors.png", "ch6_curves.png", "ch6_expansion.png",
                                         "ch6_filters_6c.png", "ch6_filters_6l.png"}
    assert all(p.stat().st_size > 1000 for p in paths)


def test_curves_put_the_expanded_rows_in_a_panel_of_their_own(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(ch6_plots, "save", lambda fig, path: figures.append(fig) or path)
    hist = {"validation_accuracy": [98.0, 99.0], "test_accuracy": [98.5, 99.1]}

    def row(id_, expand):
        return {"id": id_, "config": {"expand": expand},
                "per_seed": [{"test_at_best_validation": 99.1, "history": hist}]}
    vote = {"id": "6l", "config": {"expand": "shifts"},
            "per_seed": [{"test_at_best_validation": 99.6, "history": {"member_seconds": []}}]}
    ch6_plots.plot_curves([row("6f", "none"), row("6g", "shifts"), row("6k", "shifts"), vote],
                          tmp_path / "curves.png")
    plain, expanded = figures[0].axes
    assert plain.get_title() == "training set as given" and len(plain.lines) == 2
    assert expanded.get_title() == "expanded training set (shifts)" and len(expanded.lines) == 4
    ch6_plots.plot_curves([vote], tmp_path / "curves.png")  # only a voted ensemble: no lines
    assert len(figures[1].axes) == 1 and not figures[1].axes[0].lines


def test_figure_titles_name_the_book_count_and_whose_filters():
    vote = {"seeds": [0, 1, 2, 3, 4], "test_at_best_validation": 99.61,
            "errors": [[i, 7, 1] for i in range(39)]}
    ens = {"id": "6l", "book": 99.67, "config": {"members": 5}, "per_seed": [vote]}
    assert ch6_plots.errors_title(ens, 39, 10_000) == (
        "6l: the 39 misclassified test digits (true → predicted), test 99.61%; "
        "the book: 33 errors, 99.67%")
    assert ch6_plots.errors_title({**ens, "book": None}, 20, 10_000).startswith(
        "6l: 20 of the 39 misclassified")
    assert ch6_plots.errors_title({**ens, "book": None}, 20, 10_000).endswith("test 99.61%")
    assert ch6_plots.filters_name(ens) == "6l (first member, seed 0)"
    assert ch6_plots.filters_name({**ens, "config": {"members": 1}}) == "6l"


def test_separate_ensemble_members_are_the_single_runs_of_their_seeds(tmp_path):
    rows = {c.id: c for c in ch6.RUNS}
    members = [j.directory for j in ch6.jobs_of(dataclasses.replace(rows["6l"],
        ensemble="separate"), 1, tmp_path)]
    singles = [ch6.jobs_of(rows["6k"], s, tmp_path)[0].directory for s in range(5, 10)]
    assert members == singles and len(set(singles)) == 5
    (vmapped,) = ch6.jobs_of(dataclasses.replace(rows["6l"], ensemble="vmapped"), 1, tmp_path)
    assert vmapped.seeds == (5, 6, 7, 8, 9) and vmapped.directory not in singles
    # other settings, other folder
    assert ch6.jobs_of(rows["6g"], 0, tmp_path)[0].directory != singles[0]


@pytest.mark.mnist
@pytest.mark.slow
def test_workers_train_pinned_processes_and_a_rerun_reads_them_back(tmp_path, mnist_dir, capsys):
    argv = ["--quick", "--only", "6c,6l", "--set", "epochs=2", "--checkpoint-dir",
            str(tmp_path / "runs"), "--quiet", "--data-dir", str(mnist_dir)]
    ch6.main(argv + ["--out", str(tmp_path / "inline")])
    # checkpoints exist and no --resume: refused before training
    with pytest.raises(SystemExit, match="2"):
        ch6.main(argv + ["--out", str(tmp_path / "again")])
    assert "add --resume to continue or reuse them" in capsys.readouterr().err
    ch6.main(argv + ["--out", str(tmp_path / "workers"), "--workers", "2", "--resume"])
    assert "3 of 3 networks already trained; 0 to train" in capsys.readouterr().out
    inline, workers = (json.loads((tmp_path / d / "ch6.json").read_text())
                       for d in ("inline", "workers"))
    assert [r["per_seed"] for r in inline] == [r["per_seed"] for r in workers]


def test_set_overrides_are_typed_and_checked(tmp_path):
    cfg = run_config.override(ch6.RUNS[5], ["epochs=2", "shuffle=true", "convs=8,16", "eta=0.5",
                                            "train_size=100",
                                        "dropout_mode=inverted"])
    assert (cfg.epochs, cfg.shuffle, cfg.convs, cfg.eta, cfg.train_size, cfg.dropout_mode) == \
        (2, True, (8, 16), 0.5, 100, "inverted")
    for bad, message in [("epoch=2", "unknown config field"), ("epochs=many", "expected a value of "
                                                                              "type int"),
                         ("dropout_mode=keras", "dropout_mode must be one of"), ("eta=-1",
                                                                                 "eta must be"),
                         ("dropout=1.0", "dropout must be")]:
        with pytest.raises((ValueError, TypeError), match=message):
            run_config.override(ch6.RUNS[5], [bad])
    with pytest.raises(SystemExit):
        ch6.main(["--only", "6a", "--set", "epochs=0", "--out", str(tmp_path)])


def test_book_rows_match_book_md():
    rows = {c.id: c for c in ch6.RUNS}
    assert rows["6f"].arch() == rows["6d"].arch()[:2] + (("act",
                                                          "relu"),) + rows["6d"].arch()[3:5] + \
        (("act", "relu"),) + (("flatten",), ("dense", 100), ("act", "relu"), ("softmax", 10))
    assert (rows["6f"].eta, rows["6f"].lmbda, rows["6g"].expand) == (0.03, 0.1, "shifts")
    assert (rows["6k"].epochs, rows["6k"].dropout, rows["6k"].lmbda, rows["6l"].members) == (40,
        0.5, 0.0, 5)
    assert not any(c.shuffle for c in ch6.RUNS)  # network3 never reshuffles


def test_backprop_gradient_refuses_dropout_rows():
    with pytest.raises(ValueError, match="no dropout rule"):
        run_config.override(next(c for c in ch6.RUNS if c.id == "6k"), ["gradient=backprop"])


@pytest.mark.mnist
@pytest.mark.slow
def test_a_separate_ensemble_reads_back_the_single_runs_of_its_seeds(tmp_path, mnist_dir):
    argv = ["--quick", "--set", "epochs=1", "--checkpoint-dir", str(tmp_path / "runs"), "--quiet",
            "--data-dir", str(mnist_dir), "--out", str(tmp_path)]
    ch6.main(argv + ["--only", "6k", "--seed-list", "0,1"])
    before = sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.ckpt"))
    # its members are 6k's seeds 0 and 1: nothing trains
    (ens,) = ch6.main(argv + ["--only", "6l", "--resume"])
    assert sorted(p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.ckpt")) == before
    assert ens["per_seed"][0]["seeds"] == [0, 1]


@pytest.mark.mnist
@pytest.mark.slow
def test_rows_are_rebuilt_from_stored_networks_without_their_checkpoints(tmp_path, mnist_dir):
    """Another day, another machine: the checkpoints are gone, the committed results folder is
    all there is. --resume trains nothing and gives the same rows, the 6l vote included."""
    argv = ["--quick", "--set", "epochs=2", "--quiet", "--data-dir", str(mnist_dir), "--out",
            str(tmp_path / "res")]
    first = ch6.main(argv + ["--only", "6k,6l", "--checkpoint-dir", str(tmp_path / "runs"),
                             "--seed-list", "0"])
    stored = sorted((tmp_path / "res" / ch6.STORE).rglob("*.npz"))
    # 6l's members: 6k's seeds 0, 1
    assert [p.name for p in stored] == ["seed0_2epochs.npz", "seed1_2epochs.npz"]
    # a stored result without --resume is refused, as checkpoints are
    with pytest.raises(SystemExit, match="2"):
        ch6.main(argv + ["--only", "6k", "--checkpoint-dir", str(tmp_path / "elsewhere"),
                         "--seed-list", "0"])
    again = ch6.main(argv + ["--only", "6k,6l", "--checkpoint-dir", str(tmp_path / "new"),
                             "--seed-list", "0", "--resume"])
    assert not (tmp_path / "new").exists()  # nothing trained
    keys = ("per_seed", "best", "seeds")
    assert [{k: r[k] for k in keys} for r in first] == [{k: r[k] for k in keys} for r in again]


def newest_states(root: Path) -> dict[str, bytes]:
    """Each run folder's newest checkpoint under ``root``, as the bytes of its arrays."""
    return {str(p.parent.relative_to(root)): serialization.msgpack_serialize(checkpoint._read(p)[
        "leaves"])
            for p in sorted(root.rglob("epoch-*.ckpt"))
            if p == checkpoint.list_checkpoints(p.parent)[-1]}


@pytest.mark.mnist
@pytest.mark.slow
def test_a_killed_background_run_resumes_bit_identically_from_the_runs_folder(tmp_path, mnist_dir):
    """A 6k-style run in the background (its own session, as under nohup), SIGKILLed with its
    workers after epoch 2, then continued by the same command with --resume, ends where an
    uninterrupted run ends."""
    argv = [sys.executable, "-m", "experiments.ch6", "--only", "6k", "--seed-list", "0",
            "--workers", "2", "--set", "epochs=6", "--set", "train_size=100", "--set",
            "eval_size=200", "--quiet", "--data-dir", str(mnist_dir)]

    def env(runs):
        return {**os.environ, ch6.RUNS_ENV: str(tmp_path / runs)}
    subprocess.run(argv + ["--out", str(tmp_path / "straight")], env=env("straight"), check=True,
                   capture_output=True)
    background = subprocess.Popen(argv + ["--out", str(tmp_path / "killed")], env=env("killed"),
                                  start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    runs = tmp_path / "killed"
    while not any(checkpoint.saved_epochs(d) >= 2 for d in runs.glob("ch6/*/seed*")):
        assert time.monotonic() < deadline and background.poll() is None, \
            "the background run never reached epoch 2"
        time.sleep(0.05)
    os.killpg(background.pid, signal.SIGKILL)
    background.wait()
    stopped_at = [checkpoint.saved_epochs(d) for d in (tmp_path / "killed").glob("ch6/*/seed*")]
    assert max(stopped_at) < 6, stopped_at
    subprocess.run(argv + ["--out", str(tmp_path / "killed"), "--resume"], env=env("killed"),
                   check=True, capture_output=True)
    assert newest_states(tmp_path / "straight") == newest_states(tmp_path / "killed")
    straight, resumed = (json.loads((tmp_path / d / "ch6.json").read_text())[0]
                         for d in ("straight", "killed"))
    assert [r["history"]["test_accuracy"] for r in straight["per_seed"]] == \
        [r["history"]["test_accuracy"] for r in resumed["per_seed"]]


def test_a_damaged_stored_network_is_a_clear_error(tmp_path):
    path = tmp_path / "seed0_40epochs.npz"
    path.write_bytes(b"not an npz")
    with pytest.raises(checkpoint.CheckpointError, match="stored network .* is damaged.*delete it"):
        ch6.load_result(path)


@pytest.mark.mnist
@pytest.mark.slow
def test_a_quick_rerun_trains_again_rather_than_reading_its_stored_networks(tmp_path, mnist_dir):
    argv = ["--quick", "--only", "6c", "--quiet", "--no-plots", "--data-dir", str(mnist_dir),
            "--out", str(tmp_path)]
    ch6.main(argv)
    (stored,) = (tmp_path / ch6.STORE).rglob("*.npz")
    before = stored.stat().st_mtime_ns
    ch6.main(argv)
    assert stored.stat().st_mtime_ns > before  # written again by a second training, not read back
