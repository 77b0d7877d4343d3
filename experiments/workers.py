"""Independent training runs as parallel processes, one per core, each with XLA single-threaded.

At mini-batch 10 one network cannot keep two cores busy: XLA splits each small kernel
over its threads and the threads spend the step waiting for each other. Two networks,
each in its own process pinned to its own core, train faster in total
(results/bench_ch6.md). `run_pinned` runs a list of commands that way and reports each
one's end, so that the caller can save results as they come.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

#: XLA:CPU options for a process that should use one thread (read when JAX starts).
SINGLE_THREAD_XLA = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def pinned(argv: Sequence[str], core: int, **popen_options) -> subprocess.Popen:
    """Start ``python argv…`` pinned to ``core`` (util-linux's taskset) with XLA single-threaded.

    It shares this terminal, and so its Ctrl-C.
    """
    env = {**os.environ, "XLA_FLAGS":
           f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREAD_XLA}".strip()}
    return subprocess.Popen(["taskset", "-c", str(core), sys.executable, *argv], env=env,
                            **popen_options)


def run_pinned(commands: Sequence[Sequence[str]], workers: int,
               on_done: Callable[[int, int], None] = lambda index, status: None,
               poll_s: float = 2.0) -> list[int]:
    """Run ``commands`` (argument lists for ``python``), at most ``workers`` at a time, each pinned
    to its own core.

    Calls ``on_done(index, exit status)`` as each ends and returns all the statuses. On
    Ctrl-C the children, which share the terminal's process group, get it too: this
    waits for them to save and stop, then raises KeyboardInterrupt.
    """
    cores = sorted(os.sched_getaffinity(0))
    waiting, running, status = list(enumerate(commands)), {}, [None] * len(commands)
    try:
        while waiting or running:
            free = [c for c in cores if c not in {core for _, core in running.values()}]
            while waiting and len(running) < workers:
                index, argv = waiting.pop(0)
                core = free.pop(0) if free else cores[len(running) % len(cores)]
                running[index] = (pinned(argv, core), core)
            time.sleep(poll_s)
            for index, (proc, _) in list(running.items()):
                if proc.poll() is not None:
                    del running[index]
                    status[index] = proc.returncode
                    on_done(index, proc.returncode)
    # from the terminal (children got it too) or ``kill -INT`` of this process alone
    except KeyboardInterrupt:
        for proc, _ in running.values():
            proc.send_signal(signal.SIGINT)
        for proc, _ in running.values():
            proc.wait()
        raise
    return status
