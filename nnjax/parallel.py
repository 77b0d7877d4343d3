"""Training on several devices with `jax.sharding`: data-parallel SGD, member-parallel ensembles.

Chapter 1's update from a mini-batch of m examples is
    w → w′ = w − (η/m) Σ_x ∇C_x   (ch1, eq. 20; b likewise).
**Data parallelism** splits the mini-batch into N equal shards of m/N examples, one per
device along the mesh axis "data"; every device holds the whole network. The sum splits
by shard, Σ_x ∇C_x = Σ_d Σ_{x ∈ shard d} ∇C_x, so the mean over the *global* mini-batch
is the mean over devices of each shard's mean gradient,
    (1/m) Σ_x ∇C_x = (1/N) Σ_d (N/m) Σ_{x ∈ shard d} ∇C_x,
and every device then applies the same update. The result is single-device training up
to the order of floating-point additions. m must be a multiple of N (the book's m = 10
does not split over 8 devices: use m = 16, or 2, 5 or 10 devices).

Two ways to write it:
- automatic (`data_parallel`, `make_step`, `make_epoch`): the single-device program of
  `nnjax.train`, unchanged, compiled with `NamedSharding`s: parameters replicated,
  each mini-batch constrained to be split along "data". XLA's partitioner inserts the
  all-reduce of the gradient. **Training uses this form**: the program is written for
  the whole mini-batch, so its mean is the global mean by construction; it takes any
  gradient function (hand-derived, `jax.grad`, stochastic with a dropout key, whose mask
  is drawn for the whole mini-batch exactly as on one device) and any optimiser; and on
  a one-device mesh it is the plain program.
- explicit (`shard_map_step`): `jax.shard_map` runs the step per device on its shard
  and `lax.pmean` averages the shards' mean gradients: the collective is in the code.
  Its pitfall: under shard_map's default checks (``check_vma=True``) the replicated
  parameters are *invariant* across "data", and `jax.grad` with respect to them
  transposes the implicit broadcast into a `psum`, so the gradient comes back already
  summed over devices and a `pmean` on top leaves N × the mean gradient, silently.
  Here the parameters are cast to *varying* (``lax.pcast(..., to="varying")``) before
  the gradient function, so it returns the shard's own mean whether it is backprop or
  `jax.grad`; then the `pmean` is right. tests/test_parallel.py keeps the wrong form
  and checks that it is caught.

**Member parallelism** (ch6 ensembles): the members' stacked parameters are split along
the mesh axis "members" (`shard_members`); `make_member_epoch` is `nnjax.ensemble`'s
vmapped epoch compiled with that sharding, so each device trains its own members. On a
two-axis mesh ("members", "data") it can split each member's mini-batch as well.

Each function returned here first moves its arguments onto the mesh (jit refuses arrays
committed to other devices, such as another program's outputs) and keeps the jitted
program as ``.program``, e.g. ``step.program.lower(*args).compile().as_text()`` shows
the collectives and each device's share of the mini-batch.

Multi-host: call ``jax.distributed.initialize(...)`` first in every process; `mesh`
then spans every process's devices and the same programs run unchanged, each process
passing the same data and keys (docs/scale.md gives the launch).
"""

import math

import jax
import optax
from jax import lax
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from nnjax import ensemble, train
from nnjax.backprop import GradFn

DATA, MEMBERS = "data", "members"


def mesh(shape: tuple[int, ...] | None = None, axis_names: tuple[str, ...] = (DATA,), devices=None) -> Mesh:
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
        raise ValueError(f"mesh shape {shape} with axes {axis_names} does not fit {len(devices)} devices: give one "
                         f"size per axis, with product {len(devices)} (or pass devices=... to use fewer)")
    return jax.make_mesh(shape, axis_names, axis_types=(AxisType.Auto,) * len(shape), devices=devices)


def _check_split(what: str, n: int, m: Mesh, axis: str) -> None:
    if axis not in m.axis_names:
        raise ValueError(f"the mesh has axes {m.axis_names}, not {axis!r}: build it with parallel.mesh(..., "
                         f"axis_names=(..., {axis!r}))")
    if n % m.shape[axis]:
        raise ValueError(f"{what} {n} does not split evenly over the {m.shape[axis]} devices of mesh axis "
                         f"{axis!r}: use a multiple of {m.shape[axis]}, or a mesh with a number of devices "
                         f"that divides {n}")


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
    """``step(params, opt_state, x, y, key=None)``: `nnjax.train.make_step` over the mesh (automatic form).

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
    """``epoch(params, opt_state, key, x, y)``: `nnjax.train.make_epoch`, data-parallel and compiled.

    The training data (x, y) is replicated on every device, so each draws its part of a
    shuffled mini-batch locally; each mini-batch of ``batch_size`` is split along ``axis``.
    """
    _check_split("batch_size", batch_size, m, axis)
    replicated = NamedSharding(m, P())
    jitted = jax.jit(train.make_epoch(data_parallel(grad_fn, m, axis), optimizer, batch_size, shuffle, stochastic),
                     in_shardings=replicated, out_shardings=replicated)

    def epoch(params, opt_state, key, x, y):
        return jitted(*jax.device_put((params, opt_state, key, x, y), replicated))

    epoch.program = jitted
    return epoch


def shard_map_step(grad_fn: GradFn, optimizer: optax.GradientTransformation, m: Mesh, axis: str = DATA):
    """``step(params, opt_state, x, y)`` written per device with `jax.shard_map` (the explicit form).

    Each device computes its shard's mean gradient (N/m) Σ_{x ∈ shard} ∇C_x, `lax.pmean`
    averages them over ``axis`` and every device applies the same update. For a
    deterministic ``grad_fn`` (no dropout key: each device would need its own part of
    one mask). See the module docstring for why the parameters are cast to varying.
    """

    def local_step(params, opt_state, x, y):
        grads = grad_fn(lax.pcast(params, axis, to="varying"), x, y)  # this shard's mean, not yet summed
        grads = lax.pmean(grads, axis)  # the global mini-batch's mean: equal shards, so mean of means
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    jitted = jax.jit(jax.shard_map(local_step, mesh=m, in_specs=(P(), P(), P(axis), P(axis)), out_specs=P()))
    replicated, split = NamedSharding(m, P()), NamedSharding(m, P(axis))

    def step(params, opt_state, x, y):
        _check_split("the mini-batch size", x.shape[0], m, axis)
        return jitted(*jax.device_put((params, opt_state, x, y), (replicated, replicated, split, split)))

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
        raise ValueError(f"every leaf needs the same leading member axis, got sizes {sorted(sizes)}")
    _check_split("the number of members", sizes.pop(), m, axis)
    return jax.tree_util.tree_map(lambda leaf: jax.device_put(leaf, NamedSharding(m, P(axis))), tree)


def make_member_epoch(grad_fn: GradFn, optimizer: optax.GradientTransformation, batch_size: int, m: Mesh,
                      shuffle: bool = True, stochastic: bool = False, axis: str = MEMBERS,
                      data_axis: str | None = None):
    """``epoch(params, opt_state, keys, x, y)``: `nnjax.ensemble.make_epoch` with members split along ``axis``.

    params, opt_state and keys carry the member axis (see `shard_members`); the data is
    replicated. Member i is the network trained alone from its own key.
    data_axis: also split each member's mini-batch along this second mesh axis, e.g. on
        ``mesh((2, 4), ("members", "data"))`` each device trains half the members on a
        quarter of each mini-batch.
    """
    if data_axis is not None:
        _check_split("batch_size", batch_size, m, data_axis)
        grad_fn = data_parallel(grad_fn, m, data_axis)
    members, replicated = NamedSharding(m, P(axis)), NamedSharding(m, P())
    shardings = (members, members, members, replicated, replicated)
    jitted = jax.jit(ensemble.make_epoch(grad_fn, optimizer, batch_size, shuffle, stochastic),
                     in_shardings=shardings, out_shardings=members)

    def epoch(params, opt_state, keys, x, y):
        state = (params, opt_state, keys)
        return jitted(*shard_members(state, m, axis), *jax.device_put((x, y), replicated))

    epoch.program = jitted
    return epoch

