"""Test-wide settings and the MNIST fixtures.

Gradients are compared in float64, so x64 is switched on before any test runs; rank
promotion raises, so a silent broadcast between mismatched shapes is an error. Library
code asks for float32 explicitly wherever it creates arrays, so training still runs in
float32.

Tests that need MNIST never skip: without the files they fail with a message that says
how to provide them.
"""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """$NNJAX_DATA_DIR, else ../shared/data/mnist beside the repo, else the user cache."""
    from nnjax import data

    env = os.environ.get("NNJAX_DATA_DIR")
    shared = REPO_ROOT.parent / "shared" / "data" / "mnist"
    candidate = Path(env) if env else shared if shared.is_dir() else data.default_cache_dir()
    try:
        data.load_mnist(candidate, download=False)
    except data.DataError as e:
        pytest.fail(f"these tests need MNIST and could not load it from {candidate}: {e}\n"
                    "Set NNJAX_DATA_DIR to a directory holding the four IDX files, or run "
                    "`python -c 'import nnjax.data as d; d.load_mnist()'` online once to download "
                    "them.", pytrace=False)
    return candidate


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from nnjax import data

    return data.load_mnist(mnist_dir)


@pytest.fixture
def check_key_reuse():
    """Run a test with JAX's key-reuse checker on: consuming one PRNG key twice raises
    KeyReuseError.

    Use it (``@pytest.mark.usefixtures("check_key_reuse")``) on tests of code that shuffles
    or drops out, so that a key used twice fails the test instead of silently correlating
    two random draws.
    """
    jax.config.update("jax_debug_key_reuse", True)
    try:
        yield
    finally:
        jax.config.update("jax_debug_key_reuse", False)


# ---------------------------------------------------------------- the fast run (make test-fast)
#
# `pytest -m "not slow"` is the inner loop. Tests marked slow with a decorator are whole
# end-to-end checks; the grids below are parametrized checks whose cases mostly repeat
# one derivation on other shapes or activations, each case compiling its own programs.
# The fast run keeps the listed cases of each (the first case, should none of the listed
# ids exist any more) and the rest of the grid is marked slow, so `make test` still runs
# every case. Hypothesis draws fewer examples in the fast run (profile "fast").
THINNED = {
    "tests/test_backprop.py::test_hand_derived_equals_autodiff_float64": [
        "sigmoid-sigmoid-quadratic-5x4x3-seed0", "sigmoid-sigmoid-cross_entropy-4x3-seed1",
        "tanh-linear-quadratic-6x5x4x3-seed0", "relu-softmax-log_likelihood-3x7x2x5x4-seed1"],
    "tests/test_backprop.py::test_hand_derived_equals_autodiff_float32": [
        "sigmoid-sigmoid-quadratic-4x3-seed0"],
    "tests/test_backprop.py::test_cost_gradient_matches_finite_differences": [
        "sigmoid-sigmoid-quadratic", "relu-softmax-log_likelihood"],
    "tests/test_three_way_ch3.py::test_backprop_three_ways": [
        "matrix-tanh-sigmoid-cross_entropy", "example-sigmoid-softmax(c=2.5)-log_likelihood(c=2.5)"]
    , "tests/test_three_way_ch3.py::test_output_error_three_ways": [
        "sigmoid-cross_entropy", "softmax(c=0.5)-log_likelihood(c=0.5)"],
    "tests/test_conv.py::test_im2col_and_lax_match_the_definition": ["2-7-5-1-3-3"],
    "tests/test_conv.py::test_im2col_backward_by_hand_equals_autodiff_and_finite_differences": [
        "2-7-6-1-3-3"],
    "tests/test_conv_backprop.py::test_conv_backward_three_ways": ["lax-shape1"],
    "tests/test_conv_backprop.py::test_network_backprop_three_ways": ["tanh-conv-softmax"],
    "tests/test_layers.py::test_init_predicts_the_shape_apply_returns": [
        "None-layer0-in_shape0", "None-layer1-in_shape1", "key1-layer0-in_shape0"],
    "tests/test_layers.py::test_book_networks_have_the_expected_shapes_and_parameter_counts": [
        "6c"],
    "tests/test_guard.py::test_nan_update_is_caught_at_its_step": ["0"],
    "tests/test_serialization.py::test_round_trip_is_exact": ["float32-sigmoid-sigmoid",
                                                              "float64-tanh-softmax(c=2.0)"],
    "tests/test_unstable_gradient.py::test_width_formula_matches_brute_force": ["4.5"],
    "tests/test_checkpoint.py::test_interrupted_then_resumed_run_is_bit_identical": ["3-2"],
    "tests/test_checkpoint.py::test_resume_keeps_the_eta_schedule_and_early_stopping": ["rule0"],
    "tests/test_convnet.py::test_l2_adds_lambda_s_w_to_weight_gradients_only": ["network2-0.0005"],
    "tests/test_train.py::test_unrolled_epoch_gives_the_same_parameters": ["True"],
}


# whole tests marked slow here because their file does not import pytest
SLOW = {"tests/test_ensemble.py::test_member_i_equals_the_member_trained_alone_after_one_step"}


@pytest.hookimpl(tryfirst=True)  # before -m "not slow" deselects
def pytest_collection_modifyitems(config, items):
    grids: dict[str, list] = {}
    for item in items:
        grids.setdefault(item.nodeid.split("[")[0], []).append(item)
        if item.nodeid.split("[")[0] in SLOW:
            item.add_marker(pytest.mark.slow)
    for name, kept in THINNED.items():
        cases = [i for i in grids.get(name, []) if hasattr(i, "callspec")]
        fast = [i for i in cases if i.callspec.id in kept] or cases[:1]
        for item in cases:
            if item not in fast:
                item.add_marker(pytest.mark.slow)


def fast_run(config) -> bool:
    return "not slow" in (config.getoption("markexpr") or "")


def pytest_configure(config):
    from hypothesis import settings

    settings.register_profile("full", max_examples=60)
    settings.register_profile("fast", max_examples=12)
    settings.load_profile("fast" if fast_run(config) else "full")
    if fast_run(config):
        keep_compiled_programs()


def keep_compiled_programs() -> None:
    """Let the fast run load the programs an earlier run compiled instead of compiling them
    again: JAX's persistent compilation cache, in $NNJAX_TEST_COMPILE_CACHE (default
    ~/.cache/nnjax/test-compile-cache; "off" turns it off). Most of a test's time is
    compiling; a cached executable is the one XLA would build again (the key holds the
    program, the options and the versions), so results are unchanged. `make test` runs
    without it."""
    where = os.environ.get("NNJAX_TEST_COMPILE_CACHE",
                           str(Path.home() / ".cache" / "nnjax" / "test-compile-cache"))
    if where == "off":
        return
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
