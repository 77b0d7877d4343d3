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
                    "`python -c 'import nnjax.data as d; d.load_mnist()'` online once to download them.",
                    pytrace=False)
    return candidate


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from nnjax import data

    return data.load_mnist(mnist_dir)


@pytest.fixture
def check_key_reuse():
    """Run a test with JAX's key-reuse checker on: consuming one PRNG key twice raises KeyReuseError.

    Use it (``@pytest.mark.usefixtures("check_key_reuse")``) on tests of code that shuffles
    or drops out, so that a key used twice fails the test instead of silently correlating
    two random draws.
    """
    jax.config.update("jax_debug_key_reuse", True)
    try:
        yield
    finally:
        jax.config.update("jax_debug_key_reuse", False)
