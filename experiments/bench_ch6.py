"""Chapter 6's member throughput on this machine: which way of using the cores trains most 6k/6g
networks.

    python -m experiments.bench_ch6 [--nets 6k,6g] [--steps 300] [--rounds 2] [--out DIR]

A member-step is one mini-batch-10 SGD step of one network. Each mode below runs its
compiled steps (a `lax.scan` over ``--steps`` mini-batches of random images, dropout on
for 6k, fixed order as network3.py trains) in fresh processes, so that XLA's thread
flags and the device count can differ; the modes run interleaved, ``--rounds`` times,
and each keeps its best round. Modes:

- ``before``: the program before the hand-written backward passes of `nnjax.conv`
  (``jax.grad`` through the plain im2col and max-pool forms), one network, XLA's threads;
- ``hand_vjp``: today's program (`nnjax.conv`'s custom VJPs), one network, XLA's threads;
- ``pinned_single``: one such process alone on a quiet machine: ``pinned_pair`` is twice
  its rate when the two cores do not compete for anything they share (memory bandwidth,
  the L3 cache);
- ``pinned_pair`` (and ``before_pinned_pair``): two processes at once, each one network,
  pinned to one core with ``taskset`` and XLA single-threaded, as `experiments.ch6
  --workers 2` trains;
- ``vmapped_pair``: two networks vmapped in one program, XLA's threads;
- ``sharded_pair``: two networks on two CPU devices (`nnjax.parallel.shard_members`).

Reports member-steps per second (wall) and process CPU seconds per member-step, and the
gain over ``before`` in member-epochs per hour. Writes DIR/bench_ch6.json and .md.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import time

from experiments import bench, command_line, workers

MODES = ("before", "hand_vjp", "pinned_single", "before_pinned_pair", "pinned_pair", "vmapped_pair",
         "sharded_pair")


@contextlib.contextmanager
def plain_autodiff():
    """Trace with ``jax.grad`` of the plain im2col and max-pool forms (the program before the custom
    VJPs)."""
    from nnjax import conv
    saved = conv.conv2d_im2col, conv._max_pool
    conv.conv2d_im2col = conv.conv2d_im2col.fun
    conv._max_pool = conv._max_pool.fun
    try:
        yield
    finally:
        conv.conv2d_im2col, conv._max_pool = saved


def time_steps(net_id: str, steps: int, members: int, before: bool, shard: bool) -> dict:
    """Compile and time ``steps`` training steps of ``members`` networks; best of 3 (this
    process)."""
    import jax

    from experiments import ch6
    from nnjax import ensemble, parallel, train
    cfg = dataclasses.replace(next(c for c in ch6.RUNS if c.id == net_id), expand="none",
                              conv_impl="im2col")
    x = jax.random.uniform(jax.random.key(1), (steps * cfg.batch_size, 28, 28, 1))
    y = jax.random.randint(jax.random.key(2), (steps * cfg.batch_size,), 0, 10)
    with plain_autodiff() if before else contextlib.nullcontext():
        net, opt, run, _ = ch6.programs(cfg, 250_000, members)
        keys = jax.random.split(jax.random.key(0), members)
        params = ensemble.init_members(net.init, keys, (28, 28, 1))
        state = (params, jax.vmap(opt.init)(params), keys)
        if members == 1:
            state = jax.tree_util.tree_map(lambda a: a[0], state)
        elif shard:
            state = parallel.shard_members(state)
        state = train.State(*state)
        start = time.perf_counter()
        jax.block_until_ready(run(state, x, y))
    compile_s = time.perf_counter() - start
    timing = bench.best_of(lambda: jax.block_until_ready(run(state, x, y)), 3, 1.0 / steps)
    return {"compile_s": compile_s, "s_per_step": timing["seconds"],
            "cpu_s_per_step": timing["cpu_seconds"], "members": members,
            "device_count": jax.device_count()}


def worker(args) -> None:
    """Child process: one timing, printed as JSON on the last line."""
    print(json.dumps(time_steps(args.net, args.steps, args.members, args.before, args.shard)),
          flush=True)


def child(net_id: str, steps: int, *, members: int = 1, before: bool = False, shard: bool = False,
          core: int | None = None, env: dict | None = None) -> subprocess.Popen:
    """A timing process; with ``core``, pinned and single-threaded as `experiments.workers` runs
    networks."""
    argv = ["-m", "experiments.bench_ch6", "--worker", "--net", net_id, "--steps", str(steps),
            "--members", str(members)] + ["--before"] * before + ["--shard"] * shard
    if core is not None:
        return workers.pinned(argv, core, stdout=subprocess.PIPE, text=True)
    return subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def collect(procs: list[subprocess.Popen]) -> list[dict]:
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise RuntimeError(f"benchmark worker failed with status {p.returncode}")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def run_mode(mode: str, net_id: str, steps: int) -> dict:
    """Member-steps per second and CPU seconds per member-step of one mode."""
    if mode in ("before", "hand_vjp"):
        runs = collect([child(net_id, steps, before=mode == "before")])
    elif mode == "pinned_single":
        runs = collect([child(net_id, steps, core=0)])
    elif mode in ("pinned_pair", "before_pinned_pair"):
        runs = collect([child(net_id, steps, before=mode.startswith("before"), core=c)
                        for c in (0, 1)])
    elif mode == "vmapped_pair":
        runs = collect([child(net_id, steps, members=2)])
    else:
        runs = collect([child(net_id, steps, members=2, shard=True,
                              env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})])
    # concurrent processes: the pair's throughput is the sum of each one's members per second
    rate = sum(r["members"] / r["s_per_step"] for r in runs)
    cpu = sum(r["cpu_s_per_step"] for r in runs) / sum(r["members"] for r in runs)
    return {"member_steps_per_s": rate, "cpu_s_per_member_step": cpu, "runs": runs}


def markdown(result: dict) -> str:
    lines = ["| net | mode | member-steps / s | ms per member-step | CPU ms per member-step | "
             "member-epochs / h | vs before |", "|---|---|---|---|---|---|---|"]
    for net_id, modes in result["nets"].items():
        base = modes["before"]["member_steps_per_s"] if "before" in modes else None
        for mode, r in modes.items():
            rate = r["member_steps_per_s"]
            per_hour = rate * 3600 / 25_000  # 250,000 expanded images in mini-batches of 10
            gain = f"{rate / base:.2f}×" if base else "–"
            lines.append(f"| {net_id} | {mode} | {rate:.0f} | {1e3 / rate:.2f} | "
                         f"{1e3 * r['cpu_s_per_member_step']:.2f} | {per_hour:.1f} | {gain} |")
    env = result["environment"]
    lines.append(f"\n{result['steps']} steps per timing, best of 3 in each process, best of "
                 f"{result['rounds']} interleaved rounds. Member-epochs per hour count 25,000 "
                                        "steps (250,000 images), "
                 f"training only (evaluation adds ~2%). {env['machine']}; {env['device']}; jax "
                 f"{env['jax_version']}; load average before/after: "
                                           f"{result['load_average_before']} / "
                                           f"{result['load_average_after']}; "
                 f"code: {env['git_commit']}.")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="6k,6g", help="comma-separated networks (6k, 6g)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated modes "
                                                            f"({', '.join(MODES)})")
    p.add_argument("--steps", type=command_line.positive_int, default=300, help="mini-batches per "
                                                                                "timing")
    p.add_argument("--rounds", type=command_line.positive_int, default=2, help="interleaved rounds "
                                                                               "(best is kept)")
    p.add_argument("--out", default="results", help="directory for bench_ch6.json and .md")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--net", default="6k", help=argparse.SUPPRESS)
    p.add_argument("--members", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--before", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shard", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    nets = [n for n in ("6k", "6g") if n in command_line.parse_only(args.nets, ["6k", "6g"])]
    modes = [m for m in MODES if m in command_line.parse_only(args.modes, list(MODES))]
    result = {"steps": args.steps, "rounds": args.rounds,
              "load_average_before": bench.load_average(), "nets": {}}
    for net_id in nets:
        rounds = {m: [] for m in modes}
        for r in range(args.rounds):
            for m in modes:
                rounds[m].append(run_mode(m, net_id, args.steps))
                print(f"{net_id} round {r} {m:20s} {rounds[m][-1]['member_steps_per_s']:7.0f} "
                      "member-steps/s", flush=True)
        result["nets"][net_id] = {m: max(rs, key=lambda x: x["member_steps_per_s"]) for m,
                                  rs in rounds.items()}
    result |= {"load_average_after": bench.load_average(), "environment": bench.environment()}
    bench.save(args.out, "bench_ch6", result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
