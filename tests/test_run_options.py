"""The run options every experiment script shares: --set with field help, checkpoints and
--resume, Ctrl-C keeping finished epochs, and the persistent compilation cache."""

import argparse
import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap

import jax
import pytest
from flax import serialization

from experiments import (
    ch1,
    ch3,
    ch4,
    ch5,
    ch6,
    command_line,
    common,
    interrupts,
    progress,
    result_files,
    run_config,
)
from nnjax import checkpoint
from tests.conftest import REPO_ROOT

CONFIGS = [(ch1, run_config.RunConfig), (ch3, run_config.RunConfig), (ch5,
    run_config.RunConfig), (ch6, ch6.ConvConfig),
           (ch4, ch4.Ch4Config)]


@pytest.mark.parametrize("script, config", CONFIGS, ids=lambda v: getattr(v, "__name__", ""))
def test_help_explains_every_config_field(script, config, capsys):
    with pytest.raises(SystemExit) as info:
        script.main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    meaning = run_config.field_help(config)
    for f in dataclasses.fields(config):
        assert meaning[f.name], f"{config.__name__}.{f.name} has no help to explain it"
        assert f"  {f.name} ({run_config.type_name(f.type)}, " in text and meaning[
            f.name] in text, f.name


def test_field_help_takes_the_help_of_each_field():
    assert run_config.field_help(run_config.RunConfig)["eta"] == "learning rate η"
    assert run_config.field_help(ch5.SpeedConfig)["variants"].startswith("(hidden activation, "
                                                                         "initialiser)")
    assert "  batch_size (int, default 10): mini-batch size m" in run_config.fields_epilog(
        run_config.RunConfig)
    assert "  train_size (int | None, default None): " in run_config.fields_epilog(ch6.ConvConfig)


@pytest.mark.parametrize("script, bad", [(ch1, "epochs=-3"), (ch3, "lmbda=-1"), (ch4,
                                                                                 "sgd_epochs=0"),
                                         (ch5, "batch_size=0"), (ch6, "dropout=1.0")],
                         ids=lambda v: str(v))
def test_set_is_checked_before_any_work(script, bad, capsys):
    for assignment, message in ((bad, bad.partition("=")[0]), ("bogus=1", "unknown config field")):
        # the data directory does not exist: nothing may load
        with pytest.raises(SystemExit) as info:
            script.main(["--quick", "--set", assignment, "--data-dir", "/nonexistent", "--out",
                         "/nonexistent"])
        assert info.value.code == 2 and message in capsys.readouterr().err


def test_override_parses_an_empty_tuple():
    assert run_config.override(ch6.RUNS[1], ["convs="]).convs == ()


def interrupt_after(monkeypatch, epoch: int) -> None:
    """Make the progress line raise KeyboardInterrupt (as Ctrl-C would) after ``epoch``."""
    printer = progress.progress_printer

    def interrupting(label, total, n_eval):
        show = printer(label, total, n_eval)

        def on_epoch(r):
            show(r)
            if r["epoch"] == epoch:
                raise KeyboardInterrupt

        return on_epoch

    # common.run_seeds and ch6 call common's name, ch3's sweeps progress's
    for module in (common, progress):
        monkeypatch.setattr(module, "progress_printer", interrupting)


def without_timings(obj):
    """A record with every wall-clock time, and the mark of a resumed seed, removed (they differ
    between runs)."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items()
                if k not in ("seconds", "wall_s", "seconds_per_epoch",
                                                                           "sweep_wall_s",
                             "resumed_after")}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def stop_and_resume(main, argv, tmp_path, monkeypatch, chapter: str):
    """Run ``argv`` straight; run it again stopped by Ctrl-C after epoch 1, then resumed.

    Returns (straight records, the interrupted run's saved records, resumed records).
    """
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    main(argv + ["--out", str(straight), "--checkpoint-dir", str(straight / "ckpt"), "--quiet"])
    with monkeypatch.context() as m:
        interrupt_after(m, 1)
        with pytest.raises(SystemExit) as info:
            main(argv + ["--out", str(stopped), "--checkpoint-dir", str(stopped / "ckpt")])
    assert info.value.code == 130
    partial = json.loads((stopped / f"{chapter}.json").read_text())
    main(argv + ["--out", str(stopped), "--checkpoint-dir", str(stopped / "ckpt"), "--resume",
                 "--quiet"])
    load = [json.loads((d / f"{chapter}.json").read_text()) for d in (straight, stopped)]
    return load[0], partial, load[1]


def final_states(directory):
    """The arrays of each run's newest checkpoint (its final state) under ``directory``, as
    bytes."""
    return {str(p.parent.relative_to(directory)): serialization.msgpack_serialize(checkpoint._read(
        p)["leaves"])
            for p in sorted(directory.rglob("epoch-*.ckpt"))
            if p == checkpoint.list_checkpoints(p.parent)[-1]}


@pytest.mark.mnist
@pytest.mark.slow
def test_ch3_resumed_after_ctrl_c_equals_a_straight_run(tmp_path, mnist_dir, monkeypatch, capsys):
    argv = ["--quick", "--only", "3a", "--set", "epochs=3", "--no-plots", "--data-dir",
            str(mnist_dir)]
    straight, partial, resumed = stop_and_resume(ch3.main, argv, tmp_path, monkeypatch, "ch3")
    err = capsys.readouterr().err
    assert "interrupted: saved 0 finished record(s) and the finished epochs of 3a" in err
    (p,) = partial
    assert p["interrupted"] and p["per_seed"][0]["epochs_done"] == 2
    assert p["per_seed"][0]["history"]["epoch"] == [0, 1]
    assert "interrupted: seed 0 stopped after 2 of 3 epochs" in result_files.markdown_table(partial)
    assert without_timings(straight) == without_timings(resumed) and "interrupted" not in resumed[0]
    assert final_states(tmp_path / "straight" / "ckpt") == final_states(
        tmp_path / "stopped" / "ckpt")
    assert len(straight[0]["per_seed"][0]["accuracy"]) == 3
    # the wall time spans both processes: at least the training of all 3 epochs
    seed = resumed[0]["per_seed"][0]
    assert seed["resumed_after"] == 2 and seed["wall_s"] >= sum(seed["history"]["seconds"])
    assert "resumed from checkpoints" in (tmp_path / "stopped" / "ch3.md").read_text()


@pytest.mark.mnist
@pytest.mark.slow
def test_ch6_ensemble_resumed_after_ctrl_c_equals_a_straight_run(tmp_path, mnist_dir, monkeypatch):
    argv = ["--quick", "--only", "6c", "--set", "epochs=3", "--set", "members=2", "--set",
            "ensemble=vmapped", "--data-dir", str(mnist_dir)]
    straight, partial, resumed = stop_and_resume(ch6.main, argv, tmp_path, monkeypatch, "ch6")
    (p,) = partial
    assert p["interrupted"] and p["per_seed"][0]["epochs_done"] == 2
    assert len(p["per_seed"][0]["history"]["member_test_accuracy"]) == 2
    assert without_timings(straight) == without_timings(resumed)
    assert final_states(tmp_path / "straight" / "ckpt") == final_states(
        tmp_path / "stopped" / "ckpt")
    assert (tmp_path / "stopped" / "ch6_6c_filters.npz").exists()


@pytest.mark.mnist
@pytest.mark.slow
def test_ch6_resume_refuses_other_settings(tmp_path, mnist):
    cfg = ch6.quick(ch6.RUNS[2])
    datasets = ch6.prepare_data(cfg, mnist)
    ch6.train_members(cfg, datasets, [0], False, tmp_path)
    with pytest.raises(checkpoint.CheckpointError, match="eta: 0.1 in the checkpoint, 0.2 now"):
        ch6.train_members(dataclasses.replace(cfg, eta=0.2), datasets, [0], False, tmp_path,
                          resume=True)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        ch6.train_members(cfg, datasets, [0], False, tmp_path)


@pytest.mark.slow
@pytest.mark.mnist
def test_ch6_epoch_compiles_once_per_run(mnist, caplog):
    cfg = dataclasses.replace(ch6.quick(ch6.RUNS[2]), epochs=3)
    datasets = ch6.prepare_data(cfg, mnist)
    with jax.log_compiles(True), caplog.at_level(logging.WARNING, logger="jax"):
        result = ch6.train_members(cfg, datasets, [0], False)
    assert result["epochs_done"] == 3
    compiled = [r.getMessage().split()[1] for r in caplog.records
                if r.getMessage().startswith("Compiling jit(")]
    # epoch, outputs
    assert (compiled.count("jit(epoch)"), compiled.count("jit(<lambda>)")) == (1, 1), compiled


CACHE_PROBE = textwrap.dedent("""
    import sys
    import jax
    from experiments import command_line

    hits = []
    jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event))
    command_line.parse_args(command_line.base_parser("probe"), sys.argv[1:])
    print(float(jax.jit(lambda x: x * 2 + 1)(jax.numpy.float32(3))))
    print(hits.count("/jax/compilation_cache/cache_hits"))
""")


@pytest.mark.slow
@pytest.mark.parametrize("via", ["option", "environment"])
def test_compile_cache_is_found_by_a_second_process(tmp_path, via):
    cache = tmp_path / "cache"
    argv, env = ([f"--compile-cache={cache}"], {}) if via == "option" else ([],
        {command_line.COMPILE_CACHE_ENV: str(cache)})
    env = {**os.environ, **env, "JAX_PLATFORMS": "cpu"}

    def probe():
        out = subprocess.run([sys.executable, "-c", CACHE_PROBE, *argv], cwd=REPO_ROOT, env=env,
                             check=True, capture_output=True, text=True).stdout.split()
        return float(out[0]), int(out[1])

    assert probe() == (7.0, 0)
    assert any(cache.iterdir()), "the first process wrote no cache entry"
    value, hits = probe()
    assert value == 7.0 and hits >= 1, \
        "the second process compiled again instead of loading the cache"


def test_ctrl_c_offers_to_resume_only_from_checkpoints_that_exist(tmp_path, capsys):
    for made, offered in ((False, False), (True, True)):
        ckpt = tmp_path / f"ckpt-{made}"
        if made:
            ckpt.mkdir()
        args = argparse.Namespace(out=str(tmp_path), merge=False, checkpoint_dir=str(ckpt),
                                  quick=False, set=[])
        with pytest.raises(SystemExit) as info:
            with interrupts.saving_on_interrupt(args, "ch1", ch1.IDS):
                raise KeyboardInterrupt
        err = capsys.readouterr().err
        assert info.value.code == 130 and (f"continue from the checkpoints in {ckpt}" in
                                           err) == offered, err
