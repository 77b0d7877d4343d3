"""Checks of nnjax.parallel on 8 CPU devices, run by tests/test_parallel.py in a process of their
own.

XLA reads XLA_FLAGS once per process, and the pytest process has already started JAX
with one device, so each check runs as
    XLA_FLAGS=--xla_force_host_platform_device_count=8 JAX_PLATFORMS=cpu \\
        python tests/parallel_checks.py CHECK
and prints "ok" when it passes. ``two_processes`` is the multi-host launch on one machine:
two processes with ``--xla_force_host_platform_device_count=4`` each, run as
    python tests/parallel_checks.py two_processes HOST:PORT PROCESS_ID
for PROCESS_ID 0 and 1 (CPU collectives go over gloo, jax's default). Everything is float32 (x64
stays off here), the dtype training uses; "equal" means within 1e-6.
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import PartitionSpec as P

from nnjax import autodiff, backprop, dropout, init, optim, parallel, train
from nnjax.network import Network

F32 = jnp.float32
TOL = 1e-6
NET = Network((6, 5, 3))
STEPS, M = 5, 16  # five steps of mini-batch 16: two examples per device


def problem(seed: int = 0):
    """Tiny float32 parameters and STEPS mini-batches of data (NumPy: slicing it compiles
    nothing)."""
    k_params, k_x, k_y = jax.random.split(jax.random.key(seed), 3)
    params = init.init_params(k_params, NET.sizes, init.large, dtype=F32)
    x = np.asarray(jax.random.uniform(k_x, (STEPS * M, NET.sizes[0]), F32))
    y = np.asarray(jax.random.randint(k_y, (STEPS * M,), 0, NET.sizes[-1], jnp.int32))
    return params, x, y


def optimizer():
    """The book's SGD with L2 and momentum, so the optimiser state matters too."""
    return optim.sgd(0.5, lmbda=0.1, n=STEPS * M, momentum=0.5)


def classic(epoch):
    """An ``epoch(state, x, y)`` program as ``(params, opt_state, key, x, y) -> (params,
    opt_state)``, from epoch 0."""
    def run(params, opt_state, key, x, y):
        state = epoch(train.State(params, opt_state, key), x, y)
        return state.params, state.opt_state
    run.program = getattr(epoch, "program", None)
    return run


def five_steps(step, params, x, y):
    """(params, opt_state) after STEPS calls of ``step``, mini-batch i = examples [iM, (i+1)M)."""
    state = (params, optimizer().init(params))
    for i in range(STEPS):
        state = step(*state, x[i * M:(i + 1) * M], y[i * M:(i + 1) * M])
    return state


def assert_same(got, expected, what: str) -> None:
    """The equality check every form must pass: same tree, every leaf within TOL."""
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(got),
                                                               jax.tree_util.tree_leaves(expected)))
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(expected), what
    assert diff <= TOL, f"{what}: differs from single-device training by {diff:.3g} > {TOL}"


def on_every_device(tree, n: int) -> None:
    for leaf in jax.tree_util.tree_leaves(tree):
        sharding = leaf.sharding
        assert len(sharding.device_set) == n and sharding.is_fully_replicated, sharding


def check_data_parallel_step() -> None:
    """Both forms, both gradient paths: 5 sharded steps equal 5 single-device steps."""
    m = parallel.mesh()
    assert m.shape == {"data": 8}, m
    params, x, y = problem()
    for name, grad in (("backprop", backprop.make_grad(NET)), ("autodiff",
                                                               autodiff.make_grad(NET))):
        alone = five_steps(jax.jit(train.make_step(grad, optimizer())), params, x, y)
        for form, step in (("automatic", parallel.make_step(grad, optimizer(), m)),
                           ("shard_map", parallel.shard_map_step(grad, optimizer(), m))):
            sharded = five_steps(step, params, x, y)
            assert_same(sharded, alone, f"{form} form, {name} gradient")
            on_every_device(sharded, 8)
            # the work really is split: each device sees 2 of the 16 examples; the gradient is
            # all-reduced
            no_key = (None,) if form == "automatic" else ()  # make_step's program takes key=None
            hlo = step.program.lower(params, optimizer().init(params), x[:M], y[:M],
                                     *no_key).compile().as_text()
            assert "all-reduce" in hlo and "f32[2,6]" in hlo, f"{form}: {hlo[:2000]}"
    key = jax.random.key(1)  # train.fit's epoch 0 trains with fold_in(key, 0)
    expected = classic(train.make_epoch(backprop.make_grad(NET), optimizer(), M))(
        params, optimizer().init(params), key, x, y)
    epoch = classic(parallel.make_epoch(backprop.make_grad(NET), optimizer(), M, m))
    assert_same(epoch(params, optimizer().init(params), key, x, y), expected,
                "data-parallel shuffled epoch")
    # the mask is drawn for the whole mini-batch, as on one device
    dropped = dropout.make_grad(NET, 0.5)
    assert_same(classic(parallel.make_epoch(dropped, optimizer(), M, m, stochastic=True))(
                    params, optimizer().init(params), key, x, y),
                classic(train.make_epoch(dropped, optimizer(), M, stochastic=True))(
                    params, optimizer().init(params), key, x, y),
                "data-parallel epoch with dropout")
    fitted, _ = train.fit(train.make_epoch(parallel.data_parallel(backprop.make_grad(NET), m),
                                           optimizer(), M),
                          train.State(params, optimizer().init(params), key), (x, y), epochs=1)
    assert_same(fitted.params, expected[0], "train.fit with a data_parallel gradient")
    for bad in (lambda: parallel.make_step(backprop.make_grad(NET), optimizer(), m)(
                    params, optimizer().init(params), x[:10], y[:10]),
                lambda: parallel.make_epoch(backprop.make_grad(NET), optimizer(), 10, m)):
        try:
            bad()
        except ValueError as e:
            assert "10 does not split evenly over the 8 devices" in str(
                e) and "multiple of 8" in str(e), e
        else:
            raise AssertionError("a mini-batch of 10 on 8 devices must be refused")


def pmean_of_local_gradients_step(grad_fn, opt: optax.GradientTransformation, m):
    """The mistake: pmean of jax.grad taken inside shard_map w.r.t. replicated (invariant) params.

    Under the default check_vma=True, the gradient of invariant params is already psummed
    over devices, so the pmean leaves N × the mean gradient.
    """

    def local_step(params, opt_state, x, y):
        grads = lax.pmean(grad_fn(params, x, y), "data")
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return jax.jit(jax.shard_map(local_step, mesh=m, in_specs=(P(), P(), P("data"), P("data")),
                                 out_specs=P()))


def check_pmean_of_local_gradients_is_caught() -> None:
    """The equality check fails for the mistaken form, whose gradient is 8 × the right one."""
    m = parallel.mesh()
    params, x, y = problem()
    grad = autodiff.make_grad(NET)
    alone = five_steps(jax.jit(train.make_step(grad, optimizer())), params, x, y)
    try:
        assert_same(five_steps(pmean_of_local_gradients_step(grad, optimizer(), m), params, x, y),
                    alone, "buggy")
    except AssertionError as e:
        assert "differs from single-device training" in str(e), e
    else:
        raise AssertionError("the pmean-of-local-gradients step passed the equality check")
    # one step with η = 1 and no momentum or decay moves the params by −(the gradient used)
    sgd1 = optax.sgd(1.0)
    for name, g, ratio in (("autodiff", grad, 8.0), ("backprop", backprop.make_grad(NET), 1.0)):
        moved, _ = pmean_of_local_gradients_step(g, sgd1, m)(params, sgd1.init(params), x[:M],
                                                             y[:M])
        used = jax.tree_util.tree_map(lambda a, b: a - b, params, moved)
        right = g(params, x[:M], y[:M])
        for u, r in zip(jax.tree_util.tree_leaves(used), jax.tree_util.tree_leaves(right)):
            np.testing.assert_allclose(u, ratio * r, rtol=1e-4, atol=1e-6, err_msg=name)
    # (hand-derived backprop never differentiates w.r.t. the invariant params, so the same
    # code is right for it: the mistake depends on the gradient path, which is why it is silent)


def check_member_parallel() -> None:
    """8 members on 8 devices, one each, equal each member trained alone; so do 4 members on a
    (members 2) × (data 4) mesh, each device holding 2 members and 4 of each mini-batch's 16."""
    _, x, y = problem()
    k_init, k_train = jnp.stack([jax.random.split(jax.random.key(s)) for s in range(8)], axis=1)
    params = jax.vmap(lambda k: init.init_params(k, NET.sizes, init.large, dtype=F32))(k_init)
    grad, opt = backprop.make_grad(NET), optimizer()
    alone_epoch = classic(train.make_epoch(grad, opt, M))
    alone = [alone_epoch(start, opt.init(start), k_train[i], x, y)[0]
             for i, start in enumerate(jax.tree_util.tree_map(lambda p, i=i: p[i], params)
                                       for i in range(8))]
    m = parallel.mesh(axis_names=("members",))
    trained, _ = classic(parallel.make_member_epoch(grad, opt, M, m))(params,
        jax.vmap(opt.init)(params), k_train, x, y)
    leaf = trained[-1]["w"]
    assert len(leaf.sharding.device_set) == 8 and [s.data.shape[0]
                                                   for s in leaf.addressable_shards] == [1] * 8
    for i in range(8):
        assert_same(jax.tree_util.tree_map(lambda p, i=i: p[i], trained), alone[i], f"member {i}")
    assert not np.allclose(trained[-1]["w"][0], trained[-1]["w"][1])  # members really differ
    grid = parallel.mesh((2, 4), ("members", "data"))
    four = jax.tree_util.tree_map(lambda a: a[:4], (params, k_train))
    epoch = classic(parallel.make_member_epoch(grad, opt, M, grid, data_axis="data"))
    trained, _ = epoch(four[0], jax.vmap(opt.init)(four[0]), four[1], x, y)
    for i in range(4):
        assert_same(jax.tree_util.tree_map(lambda p, i=i: p[i], trained), alone[i],
                    f"member {i} on the 2 × 4 mesh")
    state = train.State(four[0], jax.vmap(opt.init)(four[0]), four[1])
    hlo = epoch.program.lower(state, x, y).compile().as_text()
    assert "f32[2,4,6]" in hlo, "each device should hold 2 members' 4 of the 16 examples"
    try:
        parallel.shard_members({"w": jnp.ones((3, 2), F32)}, m)
    except ValueError as e:
        assert "multiple of 8" in str(e), e
    else:
        raise AssertionError("3 members on 8 devices must be refused")


def check_two_processes() -> None:
    """Run as two processes of 4 devices each: the mesh spans both and 5 steps equal 5 on one
    device."""
    assert jax.process_count() == 2 and jax.local_device_count() == 4, (jax.process_count(),
                                                                        jax.local_devices())
    m = parallel.mesh()
    params, x, y = problem()
    grad = autodiff.make_grad(NET)
    alone = five_steps(jax.jit(train.make_step(grad, optimizer())), params, x, y)
    for form, step in (("automatic", parallel.make_step(grad, optimizer(), m)),
                       ("shard_map", parallel.shard_map_step(grad, optimizer(), m))):
        sharded = five_steps(step, params, x, y)
        on_every_device(sharded, 8)
        # this process's copy
        local = jax.tree_util.tree_map(lambda a: a.addressable_data(0), sharded)
        assert_same(local, alone, f"{form} form over two processes")


CHECKS = {name.removeprefix("check_"): f for name, f in globals().items()
          if name.startswith("check_")}

if __name__ == "__main__":
    if len(sys.argv) == 4:  # CHECK COORDINATOR PROCESS_ID: one of two processes
        jax.distributed.initialize(coordinator_address=sys.argv[2], num_processes=2,
                                   process_id=int(sys.argv[3]))
    assert jax.device_count() == 8, \
        f"run with XLA_FLAGS=--xla_force_host_platform_device_count=8, got {jax.devices()}"
    CHECKS[sys.argv[1]]()
    print("ok")
