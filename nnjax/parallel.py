"""Training on several devices with `jax.sharding`: data-parallel SGD, member-parallel ensembles.

Data parallelism splits each mini-batch of m examples into N shards, one per device:
    (1/m) Σ_x ∇C_x = (1/N) Σ_d (N/m) Σ_{x ∈ shard d} ∇C_x   (ch1, eq. 20),
so every device applies the same update. `data_parallel`, `make_step` and `make_epoch`
compile `nnjax.train`'s program with shardings (XLA inserts the all-reduce);
`shard_map_step` writes the collective by hand. Member parallelism (ch6 ensembles)
splits the member axis (`shard_members`, `make_member_epoch`). Each function moves its
arguments onto the mesh and keeps the jitted program as ``.program``. See
docs/design.md ("Parallel training").
"""

import math

import jax
import optax
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from nnjax import train
from nnjax.train import GradFn, State

DATA, MEMBERS = "data", "members"


def mesh(shape: tuple[int, ...] | None = None, axis_names: tuple[str, ...] = (DATA,),
         devices=None) -> Mesh:
    """A mesh of ``devices`` (default: all, across every process) with named axes.

    shape: devices along each axis; default all of them along a single axis. The product
    must equal the number of devices. Axes are `AxisType.Auto` (jax.make_mesh's default
    is Explicit), so shardings are hints to XLA's partitioner, not part of array types.
    """
    devices = jax.devices() if devices is None else list(devices)
    if shape is None:
        if len(axis_names) != 1:
            raise ValueError(f"a mesh with axes {axis_names} needs shape=(devices along each axis)")
        shape = (len(devices),)
    if len(shape) != len(axis_names) or math.prod(shape) != len(devices):
        raise ValueError(f"mesh shape {shape} with axes {axis_names} does not fit {len(devices)} "
                         f"devices: give one size per axis, with product {len(devices)} (or pass "
                         "devices=... to use fewer)")
    return jax.make_mesh(shape, axis_names, axis_types=(AxisType.Auto,) * len(shape),
                         devices=devices)


def _check_split(what: str, n: int, m: Mesh, axis: str) -> None:
    if axis not in m.axis_names:
        raise ValueError(f"the mesh has axes {m.axis_names}, not {axis!r}: build it with "
                         f"parallel.mesh(..., axis_names=(..., {axis!r}))")
    if n % m.shape[axis]:
        raise ValueError(f"{what} {n} does not split evenly over the {m.shape[axis]} devices of "
                         f"mesh axis {axis!r}: use a multiple of {m.shape[axis]}, or a mesh with a "
                         f"number of devices that divides {n}")


def data_parallel(grad_fn: GradFn, m: Mesh, axis: str = DATA) -> GradFn:
    """``grad_fn`` with its mini-batch (x, y) split along mesh axis ``axis`` (the automatic form).

    The value is unchanged, (1/m) Σ_x ∇C_x over the whole mini-batch; only where it is
    computed changes. Any ``jax.jit`` of a program calling it (e.g. `nnjax.train.fit`)
    becomes data-parallel. A stochastic gradient's key passes through.
    """
    shard = NamedSharding(m, P(axis))

    def grad(params, x, y, *key):
        _check_split("the mini-batch size", x.shape[0], m, axis)
        x, y = lax.with_sharding_constraint((x, y), shard)
        return grad_fn(params, x, y, *key)

    return grad


def make_step(grad_fn: GradFn, optimizer: optax.GradientTransformation, m: Mesh, axis: str = DATA):
    """``step(params, opt_state, x, y, key=None)``: `nnjax.train.make_step` over the mesh (automatic
    form).

    Parameters and optimiser state come back replicated on every device.
    """
    replicated, split = NamedSharding(m, P()), NamedSharding(m, P(axis))
    shardings = (replicated, replicated, split, split, replicated)
    jitted = jax.jit(train.make_step(data_parallel(grad_fn, m, axis), optimizer),
                     in_shardings=shardings, out_shardings=replicated)

    def step(params, opt_state, x, y, key=None):
        _check_split("the mini-batch size", x.shape[0], m, axis)
        return jitted(*jax.device_put((params, opt_state, x, y, key), shardings))

    step.program = jitted
    return step


def make_epoch(grad_fn: GradFn, optimizer: optax.GradientTransformation, batch_size: int, m: Mesh,
               shuffle: bool = True, stochastic: bool = False, axis: str = DATA):
    """``epoch(state, x, y) -> state``: `nnjax.train.make_epoch`, data-parallel and compiled.

    The training data is replicated on every device, so each draws its part of a shuffled
    mini-batch locally; each mini-batch of ``batch_size`` is split along ``axis``.
    """
    _check_split("batch_size", batch_size, m, axis)
    replicated = NamedSharding(m, P())
    jitted = jax.jit(train.make_epoch(data_parallel(grad_fn, m, axis), optimizer, batch_size,
                                      shuffle, stochastic, jit=False), in_shardings=replicated,
                     out_shardings=replicated)

    def epoch(state, x, y):
        return jitted(*jax.device_put((state, x, y), replicated))

    epoch.program = jitted
    return epoch


def shard_map_step(grad_fn: GradFn, optimizer: optax.GradientTransformation, m: Mesh,
                   axis: str = DATA):
    """``step(params, opt_state, x, y)`` written per device with `jax.shard_map` (the explicit
    form).

    Each device computes its shard's mean gradient (N/m) Σ_{x ∈ shard} ∇C_x, `lax.pmean`
    averages them over ``axis`` and every device applies the same update. For a
    deterministic ``grad_fn`` (no dropout key: each device would need its own part of
    one mask). See the module docstring for why the parameters are cast to varying.
    """

    def local_step(params, opt_state, x, y):
        # this shard's mean, not yet summed
        grads = grad_fn(lax.pcast(params, axis, to="varying"), x, y)
        # the global mini-batch's mean: equal shards, so mean of means
        grads = lax.pmean(grads, axis)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    jitted = jax.jit(jax.shard_map(local_step, mesh=m, in_specs=(P(), P(), P(axis), P(axis)),
                                   out_specs=P()))
    replicated, split = NamedSharding(m, P()), NamedSharding(m, P(axis))

    def step(params, opt_state, x, y):
        _check_split("the mini-batch size", x.shape[0], m, axis)
        placed = (replicated, replicated, split, split)
        return jitted(*jax.device_put((params, opt_state, x, y), placed))

    step.program = jitted
    return step


def shard_members(tree, m: Mesh | None = None, axis: str = MEMBERS):
    """Place the leading (member) axis of every leaf across mesh axis ``axis``.

    m: default a one-axis mesh of all devices named ``axis``. The number of members must
    be a multiple of the number of devices along ``axis``; on one device this only
    commits the arrays to it.
    """
    m = mesh(axis_names=(axis,)) if m is None else m
    sizes = {leaf.shape[0] for leaf in jax.tree_util.tree_leaves(tree)}
    if len(sizes) != 1:
        raise ValueError(f"every leaf needs the same leading member axis, got sizes "
                         f"{sorted(sizes)}")
    _check_split("the number of members", sizes.pop(), m, axis)
    return jax.tree_util.tree_map(lambda leaf: jax.device_put(leaf, NamedSharding(m, P(axis))),
                                  tree)


def make_member_epoch(grad_fn: GradFn, optimizer: optax.GradientTransformation, batch_size: int,
                      m: Mesh, shuffle: bool = True, stochastic: bool = False, axis: str = MEMBERS,
                      data_axis: str | None = None):
    """``epoch(state, x, y) -> state``: ``nnjax.train.make_epoch(..., members=True)`` with members
    split along ``axis``.

    The state's params, opt_state and key carry the member axis (see `shard_members`); the
    data is replicated. data_axis: also split each member's mini-batch along this second
    mesh axis, e.g. on ``mesh((2, 4), ("members", "data"))``.
    """
    if data_axis is not None:
        _check_split("batch_size", batch_size, m, data_axis)
        grad_fn = data_parallel(grad_fn, m, data_axis)
    members, replicated = NamedSharding(m, P(axis)), NamedSharding(m, P())
    shardings = State(members, members, members, replicated, replicated)
    jitted = jax.jit(train.make_epoch(grad_fn, optimizer, batch_size, shuffle, stochastic,
                                      members=True, jit=False),
                     in_shardings=(shardings, replicated, replicated), out_shardings=shardings)

    def epoch(state, x, y):
        params, opt_state, key = shard_members((state.params, state.opt_state, state.key), m, axis)
        shared = jax.device_put({"epoch": state.epoch, "extra": state.extra}, replicated)
        state = state.replace(params=params, opt_state=opt_state, key=key, **shared)
        return jitted(state, *jax.device_put((x, y), replicated))

    epoch.program = jitted
    return epoch
