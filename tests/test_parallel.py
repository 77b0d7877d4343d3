"""nnjax.parallel: data-parallel steps and member-parallel ensembles equal single-device training.

The multi-device checks (tests/parallel_checks.py) run on 8 CPU devices in a process of
their own, since XLA reads XLA_FLAGS once per process; the one-device mesh and the
argument errors are checked here, in the test process.
"""

import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

import parallel_checks as checks  # tests/ is on sys.path (pytest's default import mode)
from nnjax import backprop, parallel, train

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


CHECKS = os.path.join(REPO_ROOT, "tests", "parallel_checks.py")


def cpu_env(devices: int) -> dict:
    return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
            "JAX_PLATFORMS": "cpu", "PYTHONPATH": REPO_ROOT}


@pytest.mark.parametrize("check", sorted(set(checks.CHECKS) - {"two_processes"}))
@pytest.mark.slow
def test_on_eight_cpu_devices(check):
    out = subprocess.run([sys.executable, CHECKS, check], env=cpu_env(8), cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_of_four_devices():
    """The multi-host launch of docs/scale.md, both hosts on this machine."""
    with socket.socket() as s:  # a free port for the coordinator
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, CHECKS, "two_processes", f"localhost:{port}",
                               str(i)], env=cpu_env(4),
                              cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for i, (p, (stdout, stderr)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0 and stdout.strip().endswith("ok"), f"process {i}: {stderr[-3000:]}"


@pytest.mark.slow
def test_one_device_mesh_gives_plain_training():
    m = parallel.mesh(devices=jax.devices()[:1])
    params, x, y = checks.problem()
    grad, opt = backprop.make_grad(checks.NET), checks.optimizer()
    alone = checks.five_steps(jax.jit(train.make_step(grad, opt)), params, x, y)
    for form, step in (("automatic", parallel.make_step(grad, opt, m)), ("shard_map",
        parallel.shard_map_step(grad, opt, m))):
        checks.assert_same(checks.five_steps(step, params, x, y), alone, f"{form} form on one "
                                                                         "device")
    key = jax.random.key(2)
    alone_epoch = checks.classic(train.make_epoch(grad, opt, checks.M))
    checks.assert_same(checks.classic(parallel.make_epoch(grad, opt, checks.M, m))(params,
        opt.init(params), key, x, y),
                       alone_epoch(params, opt.init(params), key, x, y), "epoch on one device")
    members = jax.tree_util.tree_map(lambda p: jnp.stack([p, 2 * p]), params)
    keys = jax.random.split(key)
    trained, _ = checks.classic(parallel.make_member_epoch(grad, opt, checks.M, parallel.mesh(
        axis_names=("members",), devices=jax.devices()[:1])))(members, jax.vmap(opt.init)(members),
                                                              keys, x, y)
    for i in range(2):
        start = jax.tree_util.tree_map(lambda p, i=i: p[i], members)
        checks.assert_same(jax.tree_util.tree_map(lambda p, i=i: p[i], trained),
                           alone_epoch(start, opt.init(start), keys[i], x, y)[0], f"member {i} on "
                                                                                  "one device")


def test_errors_say_what_to_do():
    one = jax.devices()[:1]
    with pytest.raises(ValueError, match="needs shape="):
        parallel.mesh(axis_names=("members", "data"), devices=one)
    with pytest.raises(ValueError, match="product 1"):
        parallel.mesh((2,), devices=one)
    with pytest.raises(ValueError, match="axis_names=.*'data'"):
        parallel.make_epoch(backprop.make_grad(checks.NET), checks.optimizer(), 16,
                            parallel.mesh(axis_names=("members",), devices=one))
    with pytest.raises(ValueError, match="same leading member axis"):
        parallel.shard_members({"w": jnp.ones((2, 3)), "b": jnp.ones((3,))},
                               parallel.mesh(devices=one), "data")


@pytest.mark.slow
def test_parallel_experiment_quick(mnist_dir, capsys):
    from experiments import parallel as experiment

    history = experiment.main(["--quick", "--data-dir", str(mnist_dir)])
    assert len(history["evaluation_accuracy"]) == 1 and history["evaluation_accuracy"][
        0] > 3000, history
    assert "1 cpu device(s) in 1 process(es): mini-batch 10 = 1 × 10" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # refused before jax.distributed.initialize is called
        experiment.main(["--quick", "--coordinator", "localhost:1"])
    err = capsys.readouterr().err
    assert "needs all three of --coordinator, --num-processes and --process-id" in err
