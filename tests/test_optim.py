"""The book's update rules (ch1, ch3): each optax construction against the equation written out."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nnjax import optim

ETA, LMBDA, N, M, MU = 0.5, 5.0, 1000, 10, 0.7


def tree(key, zero_weights=False):
    """A two-layer parameter pytree like `nnjax.init.init_params` returns (float64)."""
    k = jax.random.split(key, 4)
    w1 = jax.random.normal(k[0], (3, 4), jnp.float64)
    if zero_weights:
        w1 = w1.at[0, :2].set(0.0)
    return ({"w": w1, "b": jax.random.normal(k[1], (3,), jnp.float64)},
            {"w": jax.random.normal(k[2], (2, 3), jnp.float64),
             "b": jax.random.normal(k[3], (2,), jnp.float64)})


def step(opt, params, grads, state=None):
    state = opt.init(params) if state is None else state
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state


def book(params, grads, weight_rule):
    """w → weight_rule(w, g), b → b − ηg, written out leaf by leaf."""
    return tuple({"w": weight_rule(p["w"], g["w"]), "b": p["b"] - ETA * g["b"]} for p,
                 g in zip(params, grads))


@pytest.fixture
def pg():
    return tree(jax.random.key(0), zero_weights=True), tree(jax.random.key(1))


def test_plain_sgd_is_w_minus_eta_g(pg):
    params, grads = pg
    new, _ = step(optim.sgd(ETA), params, grads)
    chex.assert_trees_all_close(new, jax.tree.map(lambda w, g: w - ETA * g, params, grads))


def test_l2_network2_decays_weights_by_eta_lambda_over_n_and_never_biases(pg):
    params, grads = pg
    new, _ = step(optim.sgd(ETA, lmbda=LMBDA, n=N), params, grads)
    chex.assert_trees_all_close(new, book(params, grads, lambda w,
                                          g: (1 - ETA * LMBDA / N) * w - ETA * g))


def test_l2_network3_decay_is_m_times_network2(pg):
    params, grads = pg
    new, _ = step(optim.sgd(ETA, lmbda=LMBDA, n=N, scaling="network3", batch_size=M), params, grads)
    chex.assert_trees_all_close(new, book(params, grads, lambda w,
                                          g: (1 - ETA * LMBDA * M / N) * w - ETA * g))


def test_l2_network3_equals_gradient_of_its_cost_term(pg):
    """network3 adds ½λΣw²/(n/m) to the mini-batch mean cost; its jax.grad is the decay."""
    params, grads = pg
    def penalty(p):
        return 0.5 * LMBDA * sum(jnp.sum(l["w"] ** 2) for l in p) / (N / M)

    total = jax.tree.map(jnp.add, grads, jax.grad(penalty)(params))
    want, _ = step(optim.sgd(ETA), params, total)
    got, _ = step(optim.sgd(ETA, lmbda=LMBDA, n=N, scaling="network3", batch_size=M), params, grads)
    chex.assert_trees_all_close(got, want)


def test_l1_shrinks_by_constant_with_sign_zero_at_zero(pg):
    params, grads = pg
    assert int(jnp.sum(params[0]["w"] == 0)) == 2
    new, _ = step(optim.sgd(ETA, lmbda=LMBDA, n=N, l1=True), params, grads)
    want = book(params, grads, lambda w, g: w - ETA * LMBDA / N * jnp.sign(w) - ETA * g)
    chex.assert_trees_all_close(new, want)
    # a zero weight moves by the gradient alone
    np.testing.assert_allclose(new[0]["w"][0, :2], -ETA * grads[0]["w"][0, :2])


def test_momentum_is_the_books_velocity_rule(pg):
    """v → μv − η(g + (λ/n)w), w → w + v over several steps, η changed half way."""
    params, _ = pg
    opt = optim.sgd(ETA, lmbda=LMBDA, n=N, momentum=MU)
    state = opt.init(params)
    p, v = params, jax.tree.map(jnp.zeros_like, params)
    eta = ETA
    for t in range(6):
        if t == 3:
            eta = ETA / 2
            state = optim.set_hyperparams(state, learning_rate=eta)
        grads = tree(jax.random.key(10 + t))
        mask = optim.weight_mask(p)
        reg = jax.tree.map(lambda w, keep: LMBDA / N * w if keep else 0.0 * w, p, mask)
        v = jax.tree.map(lambda v_, g, r, eta=eta: MU * v_ - eta * (g + r), v, grads, reg)
        new_p = jax.tree.map(jnp.add, p, v)
        params, state = step(opt, params, grads, state)
        chex.assert_trees_all_close(params, new_p)
        p = new_p


def test_momentum_equals_optax_sgd_at_constant_eta_but_not_after_eta_changes(pg):
    params, _ = pg
    ours = optim.sgd(ETA, momentum=MU)
    theirs = optax.inject_hyperparams(optax.sgd)(learning_rate=ETA, momentum=MU)
    s_ours, s_theirs = ours.init(params), theirs.init(params)
    p_ours = p_theirs = params
    for t in range(3):
        g = tree(jax.random.key(20 + t))
        p_ours, s_ours = step(ours, p_ours, g, s_ours)
        p_theirs, s_theirs = step(theirs, p_theirs, g, s_theirs)
    chex.assert_trees_all_close(p_ours, p_theirs)
    # halve η: optax rescales the accumulated velocity too, the book's rule does not
    s_ours = optim.set_hyperparams(s_ours, learning_rate=ETA / 2)
    s_theirs.hyperparams["learning_rate"] = jnp.asarray(ETA / 2)
    g = tree(jax.random.key(30))
    p_ours, _ = step(ours, p_ours, g, s_ours)
    p_theirs, _ = step(theirs, p_theirs, g, s_theirs)
    assert not np.allclose(p_ours[0]["w"], p_theirs[0]["w"])


def test_hyperparameters_vmap_as_arrays(pg):
    """A sweep: one vmapped update over arrays of η and λ equals each setting alone."""
    params, grads = pg
    etas, lmbdas = jnp.array([0.1, 0.5, 2.0]), jnp.array([0.0, 5.0, 50.0])
    opt = optim.sgd(ETA, lmbda=LMBDA, n=N)

    def one(eta, lmbda):
        state = optim.set_hyperparams(opt.init(params), learning_rate=eta, lmbda=lmbda)
        return step(opt, params, grads, state)[0]

    swept = jax.jit(jax.vmap(one))(etas, lmbdas)
    for i, (e, l) in enumerate(zip(etas.tolist(), lmbdas.tolist())):
        alone, _ = step(optim.sgd(e, lmbda=l, n=N), params, grads)
        chex.assert_trees_all_close(jax.tree.map(lambda a, i=i: a[i], swept), alone)


def test_penalties_count_weights_only(pg):
    params, _ = pg
    sq = sum(float(jnp.sum(l["w"] ** 2)) for l in params)
    ab = sum(float(jnp.sum(jnp.abs(l["w"]))) for l in params)
    np.testing.assert_allclose(optim.l2_penalty(params, LMBDA, N), LMBDA / (2 * N) * sq)
    np.testing.assert_allclose(optim.l1_penalty(params, LMBDA, N), LMBDA / N * ab)
    # dict keys sort b < w
    assert jax.tree.leaves(optim.weight_mask(params)) == [False, True, False, True]


@pytest.mark.parametrize("kwargs, match", [
    (dict(eta=0.0), r"eta must be a finite number > 0.0 \(the learning rate η\), got 0.0"),
    (dict(eta=-1.0), "eta must be a finite number > 0"),
    (dict(eta=float("inf")), "eta must be a finite number > 0.*got inf"),
    (dict(eta=float("nan")), "eta must be a finite number > 0.*got nan"),
    (dict(eta=np.array([0.1, np.inf])), "eta must be a finite number > 0"),
    (dict(eta=0.1, lmbda=-1.0, n=10), r"lmbda must be a finite number >= 0.0 \(the regularisation "
                                      r"parameter λ\)"),
    (dict(eta=0.1, lmbda=float("nan"), n=10), "lmbda must be a finite number >= 0"),
    (dict(eta=0.1, momentum=float("inf")), r"momentum must be a finite number in \[0.0, 1.0\)"),
    (dict(eta=0.1, momentum=-0.1), r"momentum must be a finite number in \[0.0, 1.0\)"),
    (dict(eta=0.1, lmbda=5.0), "needs n"),
    (dict(eta=0.1, l1=True), "needs n"),
    (dict(eta=0.1, lmbda=5.0, n=0), "n must be a positive integer"),
    (dict(eta=0.1, momentum=1.0), r"momentum must be a finite number in \[0.0, 1.0\) \(the "
                                  r"momentum coefficient μ\)"),
    (dict(eta=0.1, lmbda=5.0, n=10, scaling="network4"), "scaling must be one of"),
    (dict(eta=0.1, lmbda=5.0, n=10, scaling="network3"), "needs batch_size"),
])
def test_bad_hyperparameters_raise_clearly(kwargs, match):
    """η, λ, μ are checked by nnjax.validate: finite and in range, arrays element-wise."""
    eta = kwargs.pop("eta")
    with pytest.raises(ValueError, match=match):
        optim.sgd(eta, **kwargs)


def test_hyperparameters_of_the_wrong_kind_are_type_errors():
    with pytest.raises(TypeError, match="eta must be a finite number > 0.*got str '0.1'"):
        optim.sgd("0.1")
    with pytest.raises(TypeError, match="momentum must be"):
        optim.sgd(0.1, momentum=True)


def test_set_hyperparams_rejects_unknown_names(pg):
    state = optim.sgd(ETA).init(pg[0])
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        optim.set_hyperparams(state, eta=0.1)
