"""Chapter 2: the hand-derived BP1–BP4 against jax.grad and finite differences.

Three independent routes to ∇C must agree: the per-example algorithm, the fully
matrix-based mini-batch form, and automatic differentiation of the cost, checked in
turn against central finite differences (`jax.test_util.check_grads`).
"""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from jax.test_util import check_grads

from nnjax import activations, autodiff, backprop, costs, init
from nnjax.network import Network, cost, output_layer, targets

# (hidden activation, output activation, cost): every pairing the book uses.
MODELS = [
    (activations.SIGMOID, activations.SIGMOID, costs.QUADRATIC),
    (activations.SIGMOID, activations.SIGMOID, costs.CROSS_ENTROPY),
    (activations.SIGMOID, activations.SOFTMAX, costs.LOG_LIKELIHOOD),
    (activations.TANH, activations.LINEAR, costs.QUADRATIC),
    (activations.RELU, activations.SOFTMAX, costs.LOG_LIKELIHOOD),
]
SHAPES = [(4, 3), (5, 4, 3), (6, 5, 4, 3), (3, 7, 2, 5, 4)]  # depths 1–4, varied widths
SEEDS = [0, 1]


def problem(sizes, seed, dtype, m=5):
    """Random parameters and a mini-batch of m examples with integer labels."""
    k_p, k_x, k_y = jax.random.split(jax.random.key(seed), 3)
    params = init.init_params(k_p, sizes, init.default, dtype=dtype)
    x = jax.random.normal(k_x, (m, sizes[0]), dtype)
    y = jax.random.randint(k_y, (m,), 0, sizes[-1])
    return params, x, y


GRID = list(itertools.product(MODELS, SHAPES, SEEDS))
IDS = [f"{h.name}-{o.name}-{c.name}-{'x'.join(map(str, s))}-seed{k}" for (h, o, c), s, k in GRID]


@pytest.mark.parametrize("model,sizes,seed", GRID, ids=IDS)
def test_hand_derived_equals_autodiff_float64(model, sizes, seed):
    net = Network(sizes, *model)
    params, x, y = problem(sizes, seed, jnp.float64)
    reference = autodiff.make_grad(net)(params, x, y)
    for form in ("matrix", "example"):
        chex.assert_trees_all_close(backprop.make_grad(net, form)(params, x, y), reference,
                                    rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("model,sizes,seed", GRID[::3], ids=IDS[::3])
def test_hand_derived_equals_autodiff_float32(model, sizes, seed):
    net = Network(sizes, *model)
    params, x, y = problem(sizes, seed, jnp.float32)
    got = backprop.make_grad(net)(params, x, y)
    chex.assert_trees_all_close(got, autodiff.make_grad(net)(params, x, y), rtol=1e-5, atol=1e-6)
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(got))


@pytest.mark.parametrize("model", MODELS, ids=[f"{h.name}-{o.name}-{c.name}" for h, o, c in MODELS])
def test_cost_gradient_matches_finite_differences(model):
    """check_grads compares jax.grad of the cost with central differences (orders 1, 2)."""
    net = Network((5, 4, 3), *model)
    params, x, y = problem(net.sizes, 3, jnp.float64)
    check_grads(lambda p: cost(p, x, y, net), (params,), order=2, modes=["rev"], eps=1e-4)


def test_finite_differences_directly_against_backprop():
    """A one-sided check that needs no autodiff at all: ∂C/∂θ ≈ (C(θ + ε) − C(θ − ε)) / 2ε."""
    net = Network((4, 3, 2))
    params, x, y = problem(net.sizes, 7, jnp.float64)
    grads = backprop.make_grad(net)(params, x, y)
    flat, unravel = ravel_pytree(params)
    g_flat, _ = ravel_pytree(grads)
    eps = 1e-6
    for i in range(flat.size):
        e = jnp.zeros_like(flat).at[i].set(eps)
        numeric = (cost(unravel(flat + e), x, y, net) - cost(unravel(flat - e), x, y,
                                                             net)) / (2 * eps)
        assert abs(float(numeric) - float(g_flat[i])) < 1e-8


def test_gradients_have_the_structure_of_params():
    net = Network((784, 30, 10))
    params, x, y = problem(net.sizes, 0, jnp.float32, m=10)
    grads = backprop.make_grad(net)(params, x, y)
    chex.assert_trees_all_equal_shapes_and_dtypes(grads, params)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(
        autodiff.make_grad(net)(params, x, y))


def test_bp1_quadratic_output_error():
    """BP1 for the quadratic cost: δ^L = (a^L − y) ⊙ σ′(z^L), which is ∂C/∂z^L."""
    net = Network((5, 4, 3))
    params, x, y = problem(net.sizes, 1, jnp.float64, m=1)
    yv = targets(y, 3)[0]
    z, a = output_layer(params, x[0], net)
    delta = costs.QUADRATIC.delta(z, a, yv, activations.SIGMOID)
    np.testing.assert_allclose(delta, (a - yv) * activations.sigmoid_prime(z), rtol=1e-12)
    dC_dz = jax.grad(lambda z: costs.QUADRATIC.fn(z, activations.sigmoid(z), yv))(z)
    np.testing.assert_allclose(delta, dC_dz, rtol=1e-12)
    # BP3: the output layer's bias gradient is δ^L itself.
    g = backprop.backprop(params, x[0], yv, net)
    np.testing.assert_allclose(g[-1]["b"], delta, rtol=1e-12)


def test_bp4_is_an_outer_product():
    """BP4: ∂C/∂w^l = δ^l (a^{l−1})ᵀ has rank one for a single example."""
    net = Network((6, 5, 4))
    params, x, y = problem(net.sizes, 2, jnp.float64, m=1)
    g = backprop.backprop(params, x[0], targets(y, 4)[0], net)
    for layer in g:
        singular = np.linalg.svd(np.asarray(layer["w"]), compute_uv=False)
        assert singular[1] < 1e-12 * singular[0]
    # and its row j is δ_j times the input activations: for the first layer, x.
    np.testing.assert_allclose(g[0]["w"], np.outer(g[0]["b"], x[0]), rtol=1e-12)


def test_matrix_form_sums_the_per_example_gradients():
    net = Network((5, 4, 3))
    params, x, y = problem(net.sizes, 4, jnp.float64, m=6)
    yv = targets(y, 3)
    total = backprop.backprop_matrix(params, x, yv, net)
    summed = jax.tree_util.tree_map(lambda *g: sum(g),
                                    *[backprop.backprop(params, x[i], yv[i], net)
                                      for i in range(6)])
    chex.assert_trees_all_close(total, summed, rtol=1e-12)


def test_real_valued_targets_pass_through():
    """Regression targets (a linear output with the quadratic cost, ch3) use y as given."""
    net = Network((3, 4, 2), activations.SIGMOID, activations.LINEAR, costs.QUADRATIC)
    params, x, _ = problem(net.sizes, 5, jnp.float64)
    y = jax.random.normal(jax.random.key(9), (x.shape[0], 2), jnp.float64)
    chex.assert_trees_all_close(backprop.make_grad(net)(params, x, y),
                                autodiff.make_grad(net)(params, x, y), rtol=1e-10)


def test_unknown_form_is_refused():
    with pytest.raises(ValueError, match="'matrix' or 'example'"):
        backprop.make_grad(Network((2, 2)), form="columns")
