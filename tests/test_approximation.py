"""Chapter 4's approximations: the book's score, errors against neurons, overlap repair, ReLU."""

import jax.numpy as jnp
import numpy as np
import pytest

from nnjax import activations
from nnjax.approximation import (
    abs_errors,
    approximate_1d,
    bin_heights,
    book_score,
    grid_edges,
    relu_interpolant,
    target_space,
    tower_grid,
)
from nnjax.universality import apply, hidden_neurons


def f(x):
    return 0.2 + 0.4 * x**2 + 0.3 * x * np.sin(15 * x) + 0.05 * np.cos(50 * x)


def f2(x, y):
    return 0.5 + 0.25 * np.sin(2 * np.pi * x) * np.cos(3 * y) + 0.1 * x


X = np.linspace(0, 1, 4001)
BOOK_X = np.arange(100) / 100


def test_five_bumps_meet_the_books_goal_with_median_heights():
    c = approximate_1d(f, 5, rule="median", samples=BOOK_X)
    assert hidden_neurons(c) == 10
    assert book_score(c, f) <= 0.40
    phi = target_space(f, activations.SIGMOID)(BOOK_X)
    heights = np.asarray(c.params[1]["w"][0, ::2])
    np.testing.assert_allclose(heights[0], np.median(phi[:20]), rtol=1e-5)
    # σ⁻¹∘f at the midpoints misses the goal: the rule matters
    assert book_score(approximate_1d(f, 5), f) > 0.40


def test_book_score_is_zero_when_the_bumps_are_exact():
    const = lambda x: np.full_like(x, 0.3)  # noqa: E731
    c = approximate_1d(const, 1, pad=0.05)
    assert book_score(c, const) < 1e-5
    assert abs_errors(c, const, X)["max"] < 1e-5


def test_enough_bumps_reach_max_error_001():
    assert abs_errors(approximate_1d(f, 5, pad=0.01), f, X)["max"] > 0.1
    big = approximate_1d(f, 150, pad=0.01)
    assert hidden_neurons(big) == 300
    assert abs_errors(big, f, X)["max"] <= 0.01


def test_sharp_staircase_error_falls_like_one_over_n():
    e = [abs_errors(approximate_1d(f, n, w=100.0 * n, pad=0.1 / n), f, X)["max"]
         for n in (50, 100, 200)]
    assert e[0] > e[1] > e[2]
    assert 1.5 < e[0] / e[1] < 2.7 and 1.5 < e[1] / e[2] < 2.7


def test_linear_output_approximates_f_itself():
    c = approximate_1d(f, 150, pad=0.01, output=activations.LINEAR)
    assert c.net.output.name == "linear"
    assert abs_errors(c, f, X)["max"] <= 0.01


@pytest.mark.parametrize("hidden", [activations.TANH, activations.RELU], ids=lambda a: a.name)
def test_other_step_activations_approximate_f(hidden):
    assert abs_errors(approximate_1d(f, 200, pad=0.01, hidden=hidden), f, X)["max"] < 0.03


def test_relu_interpolant_is_exact_on_lines_and_second_order():
    line = lambda x: 0.3 + 0.4 * x  # noqa: E731
    assert abs_errors(relu_interpolant(line, 7), line, X)["max"] < 1e-5
    e = [abs_errors(relu_interpolant(f, n), f, X)["max"] for n in (80, 160)]
    assert 3.0 < e[0] / e[1] < 5.0  # O(Δ²)


def test_overlap_repair_fills_the_corners_between_towers():
    pts = np.stack(np.meshgrid(np.linspace(0, 1, 41), np.linspace(0, 1, 41), indexing="ij"),
                   -1).reshape(-1, 2)
    one = tower_grid(f2, 5, pad=0.01)
    corner = np.array([[0.4, 0.6]])  # four towers meet: none is on, g = σ(0)
    assert float(apply(one, corner)[0]) == pytest.approx(0.5, abs=1e-3)
    e1 = abs_errors(one, f2, pts)["max"]
    e4 = abs_errors(tower_grid(f2, 5, pad=0.01, copies=4), f2, pts)["max"]
    assert e1 > 0.2 and e4 < e1 / 2.5


def test_shifted_copies_in_1d():
    c = approximate_1d(f, 20, pad=0.01, copies=4)
    assert hidden_neurons(c) == 2 * 20 + 3 * 2 * 21
    assert abs_errors(c, f, X)["max"] < abs_errors(approximate_1d(f, 20, pad=0.01), f, X)["max"] / 2


def test_grid_edges():
    np.testing.assert_allclose(grid_edges(4), [0, 0.25, 0.5, 0.75, 1.0])
    e = grid_edges(4, (0.0, 1.0), shift=0.5)
    assert len(e) == 6 and e[0] < 0 and e[-1] > 1
    with pytest.raises(ValueError, match="positive integer"):
        grid_edges(0)
    with pytest.raises(ValueError, match=r"shift is a fraction of a bin in \[0, 1\)"):
        grid_edges(3, shift=1.0)
    with pytest.raises(ValueError, match="lo < hi"):
        grid_edges(3, (1.0, 0.0))


def test_bad_targets_and_options_fail_clearly():
    with pytest.raises(ValueError, match="0 < f < 1"):
        approximate_1d(lambda x: 1.5 + 0 * x, 5)
    with pytest.raises(ValueError, match="output must be sigmoid or linear"):
        approximate_1d(f, 5, output=activations.TANH)
    with pytest.raises(ValueError, match="copies"):
        tower_grid(f2, 3, copies=0)
    with pytest.raises(ValueError, match="'median' with samples"):
        bin_heights(f, grid_edges(3), rule="median")
    with pytest.raises(ValueError, match="distinct limits"):
        approximate_1d(f, 5, hidden=activations.LINEAR)


def test_a_jax_numpy_target_works_too():
    fj = lambda x: 0.2 + 0.4 * x**2 + 0.3 * x * jnp.sin(15 * x) + 0.05 * jnp.cos(50 * x)  # noqa: E731
    assert book_score(approximate_1d(fj, 5, rule="median", samples=BOOK_X), fj) <= 0.40
