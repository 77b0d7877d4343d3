"""Tests for nnjax.checkpoint and fit's checkpoint/resume: bit-exact round trips, atomic
files, damaged-file fallback, settings that must match, and resumed runs that end exactly
where uninterrupted ones do."""

import warnings
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fitting  # tests/fitting.py: train.fit with the usual pieces
from nnjax import autodiff, checkpoint, init, network, optim
from nnjax.checkpoint import CheckpointError, CheckpointWarning

NET = network.Network((6, 5, 3))


def problem(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6), dtype=np.float32), rng.integers(0, 3, n).astype(np.int32)


def state(seed=0, optimizer=None):
    params = init.init_params(jax.random.key(seed), NET.sizes, "large")
    optimizer = optimizer or optax.sgd(0.1, momentum=0.9)  # namedtuples, EmptyState, a trace
    return {"params": params, "opt_state": optimizer.init(params), "key": jax.random.key(seed + 7)}


def run(directory=None, *, epochs=5, key_seed=1, resume=False, every=1, data=None, **kw):
    params = init.init_params(jax.random.key(0), NET.sizes, "large")
    return fitting.fit(params, autodiff.make_grad(NET), optim.sgd(3.0), data or problem(),
                       epochs=epochs,
                     batch_size=4, key=jax.random.key(key_seed),
                       evaluate=partial(network.evaluate, net=NET),
                     evaluation_data=problem(seed=1), checkpoint_dir=directory,
                       checkpoint_every=every,
                     resume=resume, **kw)


def without_seconds(history):
    return {k: v for k, v in history.items() if k != "seconds"}


# ---------------------------------------------------------------- the module

def test_round_trip_is_bit_exact(tmp_path):
    s = state()
    s["opt_state"] = jax.tree_util.tree_map(lambda a: a + 0.1234567, s["opt_state"])
    history = {"epoch": [0, 1], "evaluation_cost": [0.1, float("nan")]}
    config = {"sizes": (6, 5, 3), "eta": np.float32(0.5), "nested": {"a": [1, (2, 3)]}}
    checkpoint.save(tmp_path, 2, s, history=history, config=config)
    got = checkpoint.restore(tmp_path, state(seed=3), config=config)
    assert got.epoch == 2 and got.path.name == "epoch-000002.ckpt"
    assert jax.tree_util.tree_structure(got.state) == jax.tree_util.tree_structure(s)
    for a, b in zip(jax.tree_util.tree_leaves(got.state), jax.tree_util.tree_leaves(s)):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()
    assert jax.random.key_impl(got.state["key"]) == jax.random.key_impl(s["key"])
    assert checkpoint.tree_digest(got.state) == checkpoint.tree_digest(s)
    assert got.history["epoch"] == [0, 1] and np.isnan(got.history["evaluation_cost"][1])
    assert got.config == {"sizes": [6, 5, 3], "eta": 0.5, "nested": {"a": [1, [2, 3]]}}


def test_digest_sees_every_bit_and_dtype():
    s = state()
    flipped = jax.tree_util.tree_map(lambda a: a, s)
    w = np.array(flipped["params"][0]["w"])
    w.view(np.uint32)[0, 0] ^= 1  # the last bit of one weight
    flipped["params"][0]["w"] = jnp.asarray(w)
    assert checkpoint.tree_digest(flipped) != checkpoint.tree_digest(s)
    as64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), s["params"])
    assert checkpoint.tree_digest(as64) != checkpoint.tree_digest(s["params"])
    assert checkpoint.tree_digest(state(seed=0)) == checkpoint.tree_digest(state(seed=0))


def test_keep_prunes_old_files_and_none_when_empty(tmp_path):
    assert checkpoint.restore(tmp_path / "missing", state()) is None
    for e in range(1, 6):
        checkpoint.save(tmp_path, e, state(e), keep=2)
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path)] == ["epoch-000004.ckpt",
                                                                       "epoch-000005.ckpt"]
    assert checkpoint.restore(tmp_path, state()).epoch == 5
    with pytest.raises(ValueError, match="keep"):
        checkpoint.save(tmp_path, 6, state(), keep=0)


def test_byte_flips_anywhere_are_detected(tmp_path):
    """Flip bytes all over a checkpoint file (every header byte, every 5th after): restore
    never returns a different state, it falls back to the older file."""
    checkpoint.save(tmp_path, 1, state(1))
    path = checkpoint.save(tmp_path, 2, state(2))
    good = path.read_bytes()
    expected_fallback = checkpoint.tree_digest(state(1))
    for i in [*range(40), *range(40, len(good), 5)]:
        damaged = bytearray(good)
        damaged[i] ^= 0x5A
        path.write_bytes(bytes(damaged))
        with pytest.warns(CheckpointWarning, match="epoch-000002.ckpt"):
            got = checkpoint.restore(tmp_path, state())
        assert got.epoch == 1 and checkpoint.tree_digest(got.state) == expected_fallback, i


@pytest.mark.parametrize("damage, match", [
    (lambda b: b[: len(b) // 2], "damaged"),
    (lambda b: b"", "not an nnjax checkpoint"),
    (lambda b: b"PK\x03\x04" + b[4:], "not an nnjax checkpoint"),
])
def test_damaged_newest_falls_back_and_all_damaged_fails(tmp_path, damage, match):
    first = checkpoint.save(tmp_path, 1, state(1))
    newest = checkpoint.save(tmp_path, 2, state(2))
    newest.write_bytes(damage(newest.read_bytes()))
    with pytest.warns(CheckpointWarning, match=match):
        assert checkpoint.restore(tmp_path, state()).epoch == 1
    first.write_bytes(damage(first.read_bytes()))
    with pytest.raises(CheckpointError, match="no intact checkpoint") as info:
        checkpoint.restore(tmp_path, state())
    assert str(first) in str(info.value) and str(newest) in str(info.value)


def test_leftover_temporary_file_is_ignored_then_removed(tmp_path):
    checkpoint.save(tmp_path, 1, state(1))
    stale = tmp_path / ".epoch-000002.ckpt.tmp"
    stale.write_bytes(b"half a checkpoint from a killed writer")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert checkpoint.restore(tmp_path, state()).epoch == 1
    checkpoint.save(tmp_path, 2, state(2))
    assert not stale.exists()


def test_mismatched_state_or_config_is_refused(tmp_path):
    checkpoint.save(tmp_path, 1, state(), config={"eta": 0.5, "sizes": [6, 5, 3]})
    wider = {**state(), "params": init.init_params(jax.random.key(0), (6, 7, 3))}
    with pytest.raises(CheckpointError, match=r"\['params'\]\[0\]\['b'\] is float32\[5\] in the "
                                              r"checkpoint but float32\[7\] in this run"):
        checkpoint.restore(tmp_path, wider)
    with pytest.raises(CheckpointError, match="holds 9 arrays but this run's state has 5"):
        checkpoint.restore(tmp_path, {**state(), "opt_state": optax.sgd(0.1).init(state()[
            "params"])})
    with pytest.raises(CheckpointError, match="eta: 0.5 in the checkpoint, 0.25 now"):
        checkpoint.restore(tmp_path, state(), config={"eta": 0.25, "sizes": (6, 5, 3)})
    assert checkpoint.restore(tmp_path, state(), config={"eta": 0.5, "sizes": (6, 5, 3)}).epoch == 1


# ---------------------------------------------------------------- fit

@pytest.fixture(scope="module")
def reference():
    return run(epochs=5)


@pytest.mark.usefixtures("check_key_reuse")
@pytest.mark.parametrize("stop, every", [(0, 1), (3, 2)])
def test_interrupted_then_resumed_run_is_bit_identical(tmp_path, reference, stop, every):
    reference, ref_history = reference
    # stopped after `stop` epochs, before the first checkpoint if 0
    run(tmp_path, epochs=stop, every=every)
    saved = checkpoint.list_checkpoints(tmp_path)
    assert [p.name for p in saved][-1:] == ([f"epoch-{stop:06d}.ckpt"] if stop else [])
    params, history = run(tmp_path, epochs=5, resume=True, every=every)
    assert checkpoint.tree_digest(params) == checkpoint.tree_digest(reference)
    assert without_seconds(history) == without_seconds(ref_history)


def test_resume_after_damaged_newest_is_still_bit_identical(tmp_path, reference):
    reference, _ = reference
    run(tmp_path, epochs=3)
    newest = checkpoint.list_checkpoints(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[:-5])
    with pytest.warns(CheckpointWarning):
        params, history = run(tmp_path, epochs=5, resume=True)
    assert checkpoint.tree_digest(params) == checkpoint.tree_digest(reference)
    assert history["epoch"] == [0, 1, 2, 3, 4]


def test_resume_refuses_other_settings(tmp_path):
    run(tmp_path, epochs=2, checkpoint_config={"eta": 3.0})
    with pytest.raises(ValueError, match="already holds checkpoints.*resume=True"):
        run(tmp_path, epochs=4)
    with pytest.raises(CheckpointError, match="another key"):
        run(tmp_path, epochs=4, resume=True, key_seed=2, checkpoint_config={"eta": 3.0})
    with pytest.raises(CheckpointError, match="run.eta: 3.0 in the checkpoint, 2.0 now"):
        run(tmp_path, epochs=4, resume=True, checkpoint_config={"eta": 2.0})
    with pytest.raises(CheckpointError, match="training_data"):
        run(tmp_path, epochs=4, resume=True, data=problem(n=36), checkpoint_config={"eta": 3.0})
    with pytest.raises(ValueError, match="epochs=1 but .* already holds 2 epochs"):
        run(tmp_path, epochs=1, resume=True, checkpoint_config={"eta": 3.0})


@pytest.mark.parametrize("rule", [{"halve_eta_after": 1}, {"stop_after": 2}])
def test_resume_keeps_the_eta_schedule_and_early_stopping(tmp_path, rule):
    straight, history = run(epochs=12, **rule)
    if "halve_eta_after" in rule:
        assert len(set(history["learning_rate"][:4])) > 1 and len(set(history["learning_rate"])) > 2
    ran = len(history["epoch"])
    assert 3 < ran < 12 if "stop_after" in rule else True
    run(tmp_path / "a", epochs=3 if "halve_eta_after" in rule else ran - 1, **rule)
    resumed, resumed_history = run(tmp_path / "a", epochs=12, resume=True, **rule)
    assert checkpoint.tree_digest(resumed) == checkpoint.tree_digest(straight)
    assert without_seconds(resumed_history) == without_seconds(history)
    run(tmp_path / "b", epochs=12, **rule)  # a run that the rule ended stays ended
    again, again_history = run(tmp_path / "b", epochs=20, resume=True, **rule)
    if len(history["epoch"]) < 12:
        assert checkpoint.tree_digest(again) == checkpoint.tree_digest(straight)
        assert without_seconds(again_history) == without_seconds(history)


def test_resume_of_a_finished_run_trains_nothing(tmp_path):
    params, history = run(tmp_path, epochs=3)
    again, history2 = run(tmp_path, epochs=3, resume=True)
    assert checkpoint.tree_digest(again) == checkpoint.tree_digest(params)
    assert history2 == history


# ---------------------------------------------------------------- the command line

@pytest.mark.mnist
@pytest.mark.slow
def test_cli_resume_continues_a_run_exactly(tmp_path, mnist_dir):
    from experiments import ch1

    def accuracy(epochs, out, *extra):
        args = ["--quick", "--only", "1e", "--quiet", "--set", f"epochs={epochs}", "--out",
                str(tmp_path / out), "--data-dir", str(mnist_dir), *extra]
        return ch1.main(args)[0]["per_seed"][0]["accuracy"]

    straight = accuracy(3, "straight")
    ckpt = ["--checkpoint-dir", str(tmp_path / "ckpt")]
    assert accuracy(2, "first", *ckpt) == straight[:2]
    assert [p.name for p in checkpoint.list_checkpoints(tmp_path / "ckpt" / "1e" / "seed0")] == \
        ["epoch-000001.ckpt", "epoch-000002.ckpt"]
    assert accuracy(3, "resumed", *ckpt, "--resume") == straight
    with pytest.raises(CheckpointError, match="run.eta: 3.0 in the checkpoint, 2.0 now"):
        accuracy(3, "other", *ckpt, "--resume", "--set", "eta=2")
