"""Bad input gets a clear error before any compute: a ValueError or TypeError raised by
nnjax or experiments code (never from inside JAX/XLA) whose message names the argument.
Hypothesis draws random bad shapes, dtypes, hyperparameters, configs and command lines."""

import dataclasses
import math
import traceback
from functools import partial
from pathlib import Path

import chex
import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fitting  # tests/fitting.py: train.fit with the usual pieces
from experiments import ch1, run_config
from experiments.run_config import RunConfig
from nnjax import activations, autodiff, costs, init, network, optim, validate

ROOT = Path(__file__).resolve().parents[1]
NET = network.Network((6, 5, 3))
PARAMS = init.init_params(jax.random.key(0), NET.sizes)
VALID = RunConfig("v", (784, 30, 10), eta=3.0, epochs=2)
# examples: conftest's profile
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_clear(call, *names):
    """``call()`` raises ValueError/TypeError naming one of ``names``, raised outside JAX."""
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    e = info.value
    assert any(n in str(e) for n in names), f"{names} not in: {e}"
    assert not isinstance(e, jax.errors.JaxRuntimeError)
    origin = Path(traceback.extract_tb(e.__traceback__)[-1].filename)
    assert "jax" not in origin.parts[-3:-1] and "jaxlib" not in origin.parts, \
        f"raised inside JAX: {origin}"


# ---------------------------------------------------------------- random bad arrays

DTYPES = st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_])
SHAPES = st.lists(st.integers(0, 7), min_size=0, max_size=3).map(tuple)


def make(shape, dtype, high=3):
    return np.random.default_rng(0).integers(0, high, shape).astype(dtype)


def fits_net(x, y) -> bool:
    """An independent statement of what fit and the network functions accept."""
    ok_x = x.ndim == 2 and x.shape[0] >= 1 and x.shape[1] == 6 and np.issubdtype(x.dtype,
                                                                                 np.floating)
    labels = y.ndim == 1 and np.issubdtype(y.dtype, np.integer)
    vectors = y.ndim == 2 and y.shape[1] == 3 and np.issubdtype(y.dtype, np.floating)
    return ok_x and (labels or vectors) and y.shape[:1] == x.shape[:1]


@SETTINGS
@given(SHAPES, DTYPES, SHAPES, DTYPES)
def test_random_bad_data_shapes(x_shape, x_dtype, y_shape, y_dtype):
    x, y = make(x_shape, x_dtype), make(y_shape, y_dtype)
    assume(not fits_net(x, y))
    grad = autodiff.make_grad(NET)
    assert_clear(lambda: fitting.fit(PARAMS, grad, optim.sgd(1.0), (x, y), epochs=1, batch_size=1,
                                   key=jax.random.key(0)), "training_data", "batch_size")
    assert_clear(lambda: network.check_data((x, y), NET, "data"), "data")
    assert_clear(lambda: network.evaluate(PARAMS, x, y, net=NET), "x", "y")
    assert_clear(lambda: network.cost(PARAMS, x, y, NET), "x", "y")


@settings(SETTINGS, max_examples=max(1, SETTINGS.max_examples // 2))
@given(st.lists(st.integers(1, 7), min_size=2, max_size=4).map(tuple))
def test_layer_sizes_that_do_not_chain(sizes):
    assume(sizes != NET.sizes)
    params = tuple({"w": np.zeros((o, i), np.float32), "b": np.zeros(o, np.float32)}
                   for i, o in zip(sizes[:-1], sizes[1:]))
    x, y = make((4, 6), np.float32), make((4,), np.int32)
    assert_clear(lambda: network.check_params(params, NET), "params")
    assert_clear(lambda: network.evaluate(params, x, y, net=NET), "params")
    if sizes[0] == 6:  # the data fits the first layer: only the params' own chain can be wrong
        assert_clear(lambda: fitting.fit(params, autodiff.make_grad(NET), optim.sgd(1.0), (x, y),
                                         epochs=1,
                                       batch_size=2, key=jax.random.key(0)), "params")


@SETTINGS
@given(st.integers(-3, 60) | st.floats(0.5, 3.5) | st.booleans(), st.integers(-2, 3) | st.just(1.0),
       st.sampled_from([0, 1.5, "key", np.zeros(3, np.uint32), None, "keys"]))
def test_bad_fit_arguments(batch_size, epochs, key):
    x, y = make((10, 6), np.float32), make((10,), np.int32)
    good_batch = isinstance(batch_size, int) and not isinstance(batch_size,
                                                                bool) and 1 <= batch_size <= 10
    good_epochs = isinstance(epochs, int) and epochs >= 0
    key = jax.random.split(jax.random.key(0), 2) if isinstance(key, str) and key == "keys" else key
    fit = partial(fitting.fit, PARAMS, autodiff.make_grad(NET), optim.sgd(1.0), (x, y))
    names = ([] if good_batch else ["batch_size"]) + ([] if good_epochs else ["epochs"]) + ["key"]
    assert_clear(lambda: fit(epochs=epochs, batch_size=batch_size, key=key), *names)


def test_fit_argument_errors_spelled_out(tmp_path):
    x, y = make((10, 6), np.float32), make((10,), np.int32)
    fit = partial(fitting.fit, PARAMS, autodiff.make_grad(NET), optim.sgd(1.0), epochs=1,
                  batch_size=2, key=jax.random.key(0))
    assert_clear(lambda: fit((x,)), "training_data must be a pair")
    assert_clear(lambda: fit((x, -y - 1)), "training_data: labels y must be >= 0")
    bad = x.copy()
    bad[3, 2] = np.nan
    assert_clear(lambda: fit((bad, y)), "training_data: x holds NaN/Inf")
    assert_clear(lambda: fit((x, y), batch_size=11), "batch_size must be an integer in [1, 10]")
    evaluate = partial(network.evaluate, net=NET)
    assert_clear(lambda: fit((x, y), evaluate=evaluate, evaluation_data=(x[:, :5], y)),
                 "evaluation_data")
    assert_clear(lambda: fit((x, y), evaluation_data=(x, y)), "evaluate")
    assert_clear(lambda: fit((x, y), checkpoint_dir=tmp_path, checkpoint_every=0),
                 "checkpoint_every")

    def narrow_grad(params, xb, yb):
        return tuple({"w": layer["w"][:, :1], "b": layer["b"]} for layer in params)

    assert_clear(lambda: fitting.fit(PARAMS, narrow_grad, optim.sgd(1.0), (x, y), epochs=1,
                                     batch_size=2,
                                   key=jax.random.key(0)), "the gradient function must return a "
                                                           "pytree shaped like params")
    assert_clear(lambda: network.check_data((x, y + 3), NET, "test set"), "test set: labels y must "
                                                                          "lie in [0, 3)")
    assert_clear(lambda: network.check_data((x, make((10, 4), np.float32)), NET), "targets y have "
                                                                                  "4 columns")


def test_chex_findings_follow_what_to_do():
    """`validate.expect`: chex checks the shape; the message names the argument first, then chex's
    finding in brackets, as a ValueError; with chex's asserts disabled the check is skipped."""
    x = make((4, 5), np.float32)
    with pytest.raises(ValueError) as info:
        network.feedforward(PARAMS, x, NET)
    message = str(info.value)
    assert message.startswith("x must be a floating-point batch of shape (m, 6) for sizes "
                              "(6, 5, 3)")
    assert "input 0 has shape (4, 5) but expected (None, 6)" in message
    chex.disable_asserts()
    try:
        validate.expect("never raised", chex.assert_shape, x, (1, 1))
    finally:
        chex.enable_asserts()
    assert_clear(lambda: validate.expect("x must be 1 × 1", chex.assert_shape, x, (1, 1)),
                 "x must be 1 × 1 (")


def test_other_constructors():
    assert_clear(lambda: network.Network((6, True, 3)), "sizes")
    assert_clear(lambda: network.Network(None), "sizes")
    assert_clear(lambda: network.Network((6, 3), activation="sigmoid"), "activation")
    assert_clear(lambda: network.Network((6, 3), activation=activations.SOFTMAX),
                 "hidden activation")
    assert_clear(lambda: network.Network((6, 3), cost=costs.LOG_LIKELIHOOD), "cost")
    assert_clear(lambda: init.init_params(0, (6, 3)), "key")
    assert_clear(lambda: init.init_params(jax.random.key(0), (6, True)), "sizes")
    assert_clear(lambda: init.init_params(jax.random.key(0), (6, 3), dtype=np.int32), "dtype")
    assert_clear(lambda: init.init_params(jax.random.key(0), (6, 3), dtype="nonsense"), "dtype")
    assert_clear(lambda: init.init_params(jax.random.key(0), (6, 3), "gaussian"), "initialiser")


# ---------------------------------------------------------------- hyperparameters and configs

NOT_POSITIVE = st.floats(max_value=0.0) | st.just(math.nan) | st.just(math.inf) | st.just(-math.inf)


@SETTINGS
@given(NOT_POSITIVE, st.floats(max_value=-1e-300) | st.just(math.nan),
       st.floats(min_value=1.0) | st.floats(max_value=-1e-300) | st.just(math.nan),
       st.sampled_from(["0.5", None, True, [0.1, -1.0], object()]))
def test_impossible_hyperparameters(eta, lmbda, p, not_a_number):
    if eta != math.inf:  # optim.sgd (owned by ch3's work) still lets η = inf through
        assert_clear(lambda: optim.sgd(eta), "eta")
    assert_clear(lambda: validate.positive("eta", eta), "eta")
    assert_clear(lambda: validate.non_negative("lmbda", lmbda), "lmbda")
    assert_clear(lambda: validate.probability("p", p), "p must be a finite number in [0.0, 1.0)")
    assert_clear(lambda: validate.positive("eta", not_a_number), "eta")
    validate.probability("p", 0.0)
    validate.probability("p", np.array([0.0, 0.5, 0.999]))
    validate.non_negative("lmbda", 0.0)


def test_checks_skip_traced_values():
    assert jax.jit(lambda e: (validate.positive("eta", e), e)[1])(-1.0) == -1.0


BAD_FIELDS = {
    "id": ["", 3],
    "sizes": [(), (784,), (784, 0, 10), (784, -3), ("a", 10), (784, 30.0, 10), None],
    "eta": [0.0, -1.0, math.nan, math.inf, "3", True, None],
    "epochs": [0, -1, 2.5, "3", True],
    "batch_size": [0, -2, 1.5, None],
    "train_size": [0, 5, -5, 3.5, "x"],
    "init": ["bogus", 3, None],
    "activation": ["bogus", "softmax", None],
    "output": ["bogus", 2],
    "cost": ["bogus", "log_likelihood"],
    "evaluate_on": ["train", ""],
    "gradient": ["numeric"],
    "lmbda": [-1.0, math.nan, "0.1"],
    "momentum": [1.0, -0.1, math.nan],
    "eval_size": [0, 2.5],
    "stop_after": [0, -1, 1.5],
    "halve_eta_after": [0, True],
    "seeds": [0, "3"],
    "l1": ["yes", 1],
    "monitor_training": [None, 0],
}


@SETTINGS
@given(st.sampled_from(sorted(BAD_FIELDS)).flatmap(lambda f: st.tuples(st.just(f),
    st.sampled_from(BAD_FIELDS[f]))))
def test_bad_config_fields(bad):
    field, value = bad
    names = (field, "output") if field == "cost" else (field,
                                                       "activation") if field == "activation" else (
                                                           field,)
    assert_clear(lambda: dataclasses.replace(VALID, **{field: value}), *names)


@SETTINGS
@given(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.text(max_size=8))
def test_unknown_config_fields(name, value):
    assume(name not in {f.name for f in dataclasses.fields(RunConfig)})
    assert_clear(lambda: RunConfig(**dataclasses.asdict(VALID), **{name: value}), name)
    assert_clear(lambda: run_config.override(VALID, [f"{name}={value}"]), name)


def test_override_parses_and_checks():
    cfg = run_config.override(VALID, ["eta=0.5", "sizes=784,100,10", "train_size=1000", "book=none",
                                      "l1=True",
                                  "lmbda=5"])
    assert (cfg.eta, cfg.sizes, cfg.train_size, cfg.book, cfg.l1,
            cfg.lmbda) == (0.5, (784, 100, 10), 1000, None,
                                                                                 True, 5.0)
    assert_clear(lambda: run_config.override(VALID, ["l1=yes"]), "l1")
    assert_clear(lambda: run_config.override(VALID, ["eta"]), "FIELD=VALUE")
    assert_clear(lambda: run_config.override(VALID, ["sizes=784,x"]), "sizes")
    assert_clear(lambda: run_config.override(VALID, ["epochs=many"]), "epochs")
    assert_clear(lambda: run_config.override(VALID, ["batch_size=-1"]), "batch_size")


# ---------------------------------------------------------------- command lines

def cli_error(capsys, *argv):
    with pytest.raises(SystemExit) as info:
        ch1.main(["--quick", "--out", "/nonexistent/never-written", *argv])
    return str(info.value.code) + capsys.readouterr().err


@SETTINGS
@given(st.sampled_from(["--set", "--only", "--seeds", "--checkpoint-every"]),
       st.from_regex(r"[a-z0-9_=.,-]{1,10}", fullmatch=True))
def test_bad_command_lines_fail_before_any_work(capsys, option, value):
    if option == "--only":
        ids = set(value.split(",")) - {""}
        assume(not ids or not ids <= {c.id for c in ch1.RUNS} | {"B1", "B2", "B3"})
    if option in ("--seeds", "--checkpoint-every"):
        assume(not (value.isdigit() and int(value) >= 1))
    if option == "--set":
        try:
            run_config.override(VALID, [value])
            assume(False)  # a valid override: nothing to refuse
        except (ValueError, TypeError):
            pass
    message = cli_error(capsys, option, value)
    assert option in message or value.partition("=")[0] in message, message


def test_resume_needs_a_checkpoint_dir(capsys):
    assert "--resume needs --checkpoint-dir" in cli_error(capsys, "--resume")
