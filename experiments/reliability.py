"""Reliability trials (issue 7): kill and resume, determinism, corrupt data, the NaN guard.

    python -m experiments.reliability [--quick] [--out DIR] [--data-dir DIR] [--kills N]

Not a chapter of the book: these trials check that the code which reproduces it can be
trusted. Training runs use ch1's 1a network ([784, 30, 10], sigmoid, quadratic cost,
large init, η = 3, mini-batch 10) on the first images of the training set. Writes
DIR/reliability.json and DIR/reliability.md:

- kill/resume: a run that checkpoints every epoch is killed with SIGKILL at a random
  moment and restarted with resume; its final parameters must hash (SHA-256) to the
  digest of an uninterrupted run without checkpoints.
- determinism: fresh processes with the same seed give identical digests; another seed
  gives a different one.
- corrupt files: MNIST files with a flipped byte, a truncation, a wrong magic number or a
  wrong count, raw or gzipped, are refused when read from disk and when they arrive from
  a mirror (the cache must be left as it was); downloads killed mid-stream must leave
  nothing a later run trusts, and the next download cleans up.
- NaN guard: a NaN injected into the update at a random step is caught at that step, and
  the checkpoint written before it holds exactly the clean run's state.
- overhead: the guard's check and one checkpoint write against an epoch on 50,000 images.
"""

import argparse
import dataclasses
import functools
import gzip
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import command_line, common, result_files
from experiments.run_config import RunConfig
from nnjax import checkpoint, data, guard, init, monitor, optim, train

CONFIG = RunConfig("R1", (784, 30, 10), eta=3.0, epochs=20, train_size=10_000,
                   note="ch1's 1a network on the first train_size training images")
QUICK = dataclasses.replace(CONFIG, epochs=6, train_size=1000)
REPO = Path(__file__).resolve().parents[1]
KINDS = ("flip", "truncate", "magic", "count")
TARGETS = (data.TEST_LABELS, data.TEST_IMAGES)


def nan_at_step(k: int) -> optax.GradientTransformation:
    """Fault injection: updates pass through unchanged except at global step k, where they become
    NaN."""

    def update(updates, count, params=None):
        return jax.tree_util.tree_map(lambda u: jnp.where(count == k, jnp.nan, u),
                                      updates), count + 1

    return optax.GradientTransformation(lambda params: jnp.zeros((), jnp.int32), update)


def train_run(cfg: RunConfig, training, seed: int, *, checkpoint_dir=None, optimizer=None,
              epochs=None, on_epoch=None):
    """The final parameters of ``cfg`` trained from seed ``seed`` (resuming when checkpointing)."""
    net = cfg.network()
    k_init, k_train = jax.random.split(jax.random.key(seed))
    params = init.init_params(k_init, net.sizes, cfg.init)
    opt = optimizer or optim.sgd(cfg.eta)
    pieces = [guard.Guard()] + ([checkpoint.Checkpoints(checkpoint_dir, resume=True)]
                                if checkpoint_dir else [])
    state, _ = train.fit(train.make_epoch(common.gradient_fn(net, cfg.gradient), opt,
                                          cfg.batch_size),
                         train.State(params, opt.init(params), k_train, extra=monitor.counters()),
                         training, epochs=cfg.epochs if epochs is None else epochs, pieces=pieces,
                         on_epoch=on_epoch)
    return state.params


# ---------------------------------------------------------------- worker processes

def worker(work: Path, seed: int, checkpoint_dir: str | None) -> None:
    """Train in this process from the subset saved in ``work``; print a line per epoch, then the
    digest."""
    fields = json.loads((work / "config.json").read_text())
    cfg = RunConfig(**fields | {"sizes": tuple(fields["sizes"])})
    training = tuple(np.load(work / f"{a}.npy", allow_pickle=False) for a in "xy")
    params = train_run(cfg, training, seed, checkpoint_dir=checkpoint_dir,
                       on_epoch=lambda r: print(f"epoch {r['epoch']}", flush=True))
    print("result " + json.dumps({"digest": checkpoint.tree_digest(params)}), flush=True)


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "experiments.reliability", *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def until_epoch(proc: subprocess.Popen, epoch: int) -> None:
    """Wait until the worker has finished (and checkpointed) epoch ``epoch``."""
    for line in proc.stdout:
        if line.startswith(f"epoch {epoch}\n"):
            return
    raise RuntimeError(f"worker exited with {proc.wait()} before finishing epoch {epoch}")


def result(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate()
    lines = [line for line in out.splitlines() if line.startswith("result ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker failed with exit code {proc.returncode}")
    return json.loads(lines[-1][len("result "):])["digest"]


# ---------------------------------------------------------------- training trials

def determinism(work: Path, n: int, epochs: int) -> dict:
    """n fresh processes with seed 0 and one with seed 1; the first also times its epochs."""
    digests, seen = [], []
    for i in range(n):
        proc = spawn("--worker", str(work), "--seed", "0")
        if i == 0:
            for e in range(epochs):
                until_epoch(proc, e)
                seen.append(time.perf_counter())
        digests.append(result(proc))
    other = result(spawn("--worker", str(work), "--seed", "1"))
    return {"processes": n, "digests": digests, "identical": len(set(digests)) == 1,
            "other_seed_digest": other, "other_seed_differs": other != digests[0],
            "epoch_s": float(np.median(np.diff(seen)))}


def kill_resume(work: Path, trials: int, epochs: int, reference: str, epoch_s: float, rng) -> dict:
    """Kill a checkpointing run at a random moment of its training, resume it, compare digests.

    The moment: after a random epoch e in [0, epochs − 2] has been checkpointed, a random
    fraction of an epoch's time later, so that kills fall all over the training, checkpoint
    writes included (before the first checkpoint there is nothing to resume from).
    """
    rows = []
    for t in range(trials):
        ckpt = work / f"kill{t}"
        proc = spawn("--worker", str(work), "--seed", "0", "--checkpoint-dir", str(ckpt))
        after_epoch, delay = int(rng.integers(0, epochs - 1)), float(rng.uniform(0, epoch_s))
        until_epoch(proc, after_epoch)
        try:
            proc.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed = True
        saved = checkpoint.list_checkpoints(ckpt)
        digest = result(spawn("--worker", str(work), "--seed", "0", "--checkpoint-dir", str(ckpt)))
        rows.append({"after_epoch": after_epoch, "delay_s": delay, "killed": killed,
                     "resumed_from_epoch": int(saved[-1].stem[6:]), "equal": digest == reference})
    return {"trials": trials, "killed": sum(r["killed"] for r in rows),
            "equal": sum(r["equal"] for r in rows),
            "resumed_from_epochs": sorted(r["resumed_from_epoch"] for r in rows), "runs": rows}


def nan_injection(cfg: RunConfig, training, work: Path, rng) -> dict:
    """Inject NaN at a random step after the first epoch; check the step reported and the
    checkpoint."""
    steps = cfg.train_size // cfg.batch_size
    k = int(rng.integers(steps, cfg.epochs * steps))
    ckpt = work / "nan"
    try:
        train_run(cfg, training, 0, checkpoint_dir=ckpt,
                  optimizer=optax.chain(optim.sgd(cfg.eta), nan_at_step(k)))
        raise AssertionError("the injected NaN was not caught")
    except guard.NonFiniteError as e:
        caught, message = e.step, str(e)
    params, opt = init.init_params(jax.random.key(0), cfg.sizes), optax.chain(optim.sgd(cfg.eta),
                                                                              nan_at_step(k))
    saved = checkpoint.restore(ckpt, checkpoint.layout(  # a state of the right shapes
        train.State(params, opt.init(params), jax.random.key(0), extra=monitor.counters())))
    clean = train_run(cfg, training, 0, epochs=saved.epoch)
    return {"injected_step": k, "caught_step": caught, "message": message,
            "checkpoint_epoch": saved.epoch, "expected_checkpoint_epoch": k // steps,
            "checkpoint_finite": bool(guard.all_finite(saved.state)),
            "checkpoint_equals_clean_run": checkpoint.tree_digest(saved.state[
                "params"]) == checkpoint.tree_digest(clean)}


def overhead(cfg: RunConfig, training, work: Path, epochs: int) -> dict:
    """Median time of an epoch, of the guard's all-finite check and of one checkpoint write."""
    net = cfg.network()
    params = init.init_params(jax.random.key(0), net.sizes, cfg.init)
    opt = optim.sgd(cfg.eta)
    state = opt.init(params)
    x, y = (jnp.asarray(a) for a in training)
    run_epoch = train.make_epoch(common.gradient_fn(net, cfg.gradient), opt, cfg.batch_size)
    # compile
    state = jax.block_until_ready(run_epoch(train.State(params, state, jax.random.key(1)), x, y))
    bool(guard.all_finite((state.params, state.opt_state)))
    times = {"epoch_s": [], "guard_s": [], "checkpoint_s": []}
    for e in range(epochs):
        start = time.perf_counter()
        state = jax.block_until_ready(run_epoch(state, x, y))
        times["epoch_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        bool(guard.all_finite((state.params, state.opt_state)))
        times["guard_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        checkpoint.save(work / "overhead", e + 1, checkpoint.layout(state))
        times["checkpoint_s"].append(time.perf_counter() - start)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"n_train": int(x.shape[0]), "epochs_timed": epochs, **med,
            "guard_fraction": med["guard_s"] / med["epoch_s"],
            "checkpoint_fraction": med["checkpoint_s"] / med["epoch_s"]}


# ---------------------------------------------------------------- data trials

def corrupt(genuine: bytes, zipped: bytes, kind: str, container: str, rng) -> bytes:
    """One damaged copy of a file: ``kind`` applied to the gz bytes or to the decompressed bytes."""
    b = bytearray(zipped if container == "gz" and kind in ("flip", "truncate") else genuine)
    if kind == "flip":
        b[rng.integers(len(b))] ^= int(rng.integers(1, 256))
    elif kind == "truncate":
        del b[rng.integers(len(b)):]
    elif kind == "magic":
        b[:4] = next(m for m in iter(lambda: rng.bytes(4), None) if m != bytes(b[:4]))
    else:  # count: the header's first dimension says a different number of items
        n = int.from_bytes(b[4:8], "big")
        b[4:8] = max(0, n + int(rng.choice([-1, 1]) * rng.integers(1, 1000))).to_bytes(4, "big")
    damaged = bytes(b)
    return gzip.compress(damaged, compresslevel=1) if container == "gz" and kind in ("magic",
        "count") else damaged


def corrupt_files(data_dir: Path, work: Path, trials: int, rng) -> dict:
    """Damaged files read from disk and served by a mirror; count refusals and check the cache."""
    originals = {name: (data_dir / f"{name}.gz").read_bytes() for name in data.FILE_NAMES}
    genuine = {name: gzip.decompress(z) for name, z in originals.items()}
    tally = {path: {"trials": 0, "refused": 0, "named_file_and_hash": 0, "benign_gzip_header": 0,
                    "accepted_damaged": 0} for path in ("read", "download")}
    tally["download"]["cache_left_clean"] = 0
    for t in range(trials):
        name, kind, container = TARGETS[t % 2], KINDS[(t // 2) % 4], ("raw", "gz")[(t // 8) % 2]
        damaged = corrupt(genuine[name], originals[name], kind, container, rng)
        sha = data.MNIST_SHA256[name]
        trial = work / f"corrupt{t}"
        (trial / "mirror").mkdir(parents=True)
        path = trial / (f"{name}.gz" if container == "gz" else name)
        path.write_bytes(damaged)
        (trial / "mirror" / f"{name}.gz").write_bytes(damaged)
        cache = trial / "cache"
        cache.mkdir()
        for other in set(data.FILE_NAMES) - {name}:
            (cache / f"{other}.gz").symlink_to(data_dir / f"{other}.gz")
        before = sorted(os.listdir(cache))
        mirrors = ((trial / "mirror").as_uri() + "/",)
        read = functools.partial(data.read_idx, path, sha256=sha)
        download = functools.partial(data.download_mnist, cache, mirrors=mirrors)
        for where, attempt in (("read", read), ("download", download)):
            row = tally[where]
            row["trials"] += 1
            try:
                got = attempt()
                loaded = got if where == "read" else data.read_idx(next(cache.glob(f"{name}*")))
                same = loaded.tobytes() == genuine[name][len(genuine[name]) - loaded.nbytes:]
                row["benign_gzip_header" if same else "accepted_damaged"] += 1
            except data.DataError as e:
                row["refused"] += 1
                row["named_file_and_hash"] += name in str(e) and sha in str(e)
                if where == "download":
                    row["cache_left_clean"] += sorted(os.listdir(cache)) == before
        shutil.rmtree(trial)
    return tally


class _Slow(http.server.SimpleHTTPRequestHandler):
    """Serves files in 16 KiB chunks 5 ms apart, so a download can be killed mid-stream."""

    def copyfile(self, source, outputfile):
        try:
            while chunk := source.read(16384):
                outputfile.write(chunk)
                time.sleep(0.005)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed: expected here
            pass

    def log_message(self, *args):
        pass


def interrupted_downloads(data_dir: Path, work: Path, trials: int, rng) -> dict:
    """SIGKILL a download mid-stream; nothing may be trusted and the next download must clean up."""
    name = data.TEST_IMAGES
    mirror = work / "slow-mirror"
    mirror.mkdir()
    (mirror / f"{name}.gz").symlink_to(data_dir / f"{name}.gz")
    rows = []
    handler = functools.partial(_Slow, directory=str(mirror))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        for t in range(trials):
            cache = work / f"download{t}"
            cache.mkdir()
            for other in set(data.FILE_NAMES) - {name}:
                (cache / f"{other}.gz").symlink_to(data_dir / f"{other}.gz")
            proc = spawn("--worker-download", str(cache), "--mirror", url)
            deadline = time.perf_counter() + 60
            while (not list(cache.glob(".*.part")) and proc.poll() is None
                   and time.perf_counter() < deadline):
                time.sleep(0.01)
            time.sleep(float(rng.uniform(0, 0.3)))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            leftover = [p.name for p in cache.glob(".*.part")]
            try:
                data.load_idx_dataset(cache, checksums=data.MNIST_SHA256)
                trusted = True
            except data.DataError:
                trusted = False
            data.download_mnist(cache, mirrors=(mirror.as_uri() + "/",))
            data.load_idx_dataset(cache, checksums=data.MNIST_SHA256)
            rows.append({"part_files_left_by_kill": len(leftover), "trusted_after_kill": trusted,
                         "clean_after_next_download": not list(cache.glob(".*.part"))})
        server.shutdown()
    return {"trials": trials, "interrupted": sum(r["part_files_left_by_kill"] > 0 for r in rows),
            "never_trusted": sum(not r["trusted_after_kill"] for r in rows),
            "cleaned_by_next_download": sum(r["clean_after_next_download"] for r in rows),
            "runs": rows}


# ---------------------------------------------------------------- report

def markdown(r: dict) -> str:
    k, d, n, o = r["kill_resume"], r["determinism"], r["nan_injection"], r["overhead"]
    lines = ["| trial | result |", "|---|---|",
             f"| SIGKILL at a random moment of training, then resume | {k['equal']}/{k['trials']} "
             f"final digests equal the uninterrupted run's ({k['killed']} killed before they "
             f"finished; resumed from epochs {k['resumed_from_epochs']}) |",
             f"| same seed in {d['processes']} fresh processes | "
             f"{'identical' if d['identical'] else 'DIFFERENT'} digests; another seed "
             f"{'differs' if d['other_seed_differs'] else 'DOES NOT differ'} |"]
    for where, row in r["corrupt_files"].items():
        extra = (f", cache left clean {row['cache_left_clean']}/{row['refused']}"
                 if where == "download" else "")
        lines.append(f"| damaged MNIST files ({where}) | refused {row['refused']}/{row['trials']} "
                     f"(naming file and expected hash: {row['named_file_and_hash']}); harmless "
                     "gzip-header flips accepted with genuine content: "
                     f"{row['benign_gzip_header']}; damaged data accepted: "
                     f"{row['accepted_damaged']}{extra} |")
    i = r["interrupted_downloads"]
    lines += [f"| download killed mid-stream | {i['interrupted']}/{i['trials']} left a part file; "
              f"trusted by a later load: {i['trials'] - i['never_trusted']}; cleaned by the next "
              f"download: {i['cleaned_by_next_download']}/{i['trials']} |",
              f"| NaN injected at step {n['injected_step']} | caught at step {n['caught_step']}; "
              f"checkpoint of epoch {n['checkpoint_epoch']} (expected "
              f"{n['expected_checkpoint_epoch']}) finite: {n['checkpoint_finite']}, equal to a "
              f"clean run: {n['checkpoint_equals_clean_run']} |",
              f"| overhead per epoch ({o['n_train']} images) | epoch {o['epoch_s']:.3f} s; guard "
              f"check {1e3 * o['guard_s']:.2f} ms ({100 * o['guard_fraction']:.2f}%); checkpoint "
              f"write {1e3 * o['checkpoint_s']:.1f} ms ({100 * o['checkpoint_fraction']:.2f}%) |",
              f"\nNaN message: {n['message']}",
              f"\nConfig: {r['config']}; wall {r['wall_s']:.0f} s; {r['device']}; jax "
              f"{r['jax_version']}; {r['machine']}."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few trials of each kind on a small "
                                                        "subset (seconds)")
    p.add_argument("--out", default="results", help="directory for reliability.json/.md (default: "
                                                    "results)")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default: $NNJAX_DATA_DIR, "
                                                    "else the cache)")
    p.add_argument("--kills", type=command_line.positive_int, default=None, help="kill/resume "
                                                                                 "trials (default "
                                                                                 "20; quick 2)")
    p.add_argument("--processes", type=command_line.positive_int, default=None,
                   help="same-seed processes (default 5; quick 2)")
    p.add_argument("--corrupt", type=command_line.positive_int, default=None,
                   help="damaged-file trials (default 160; quick 16)")
    p.add_argument("--downloads", type=command_line.positive_int, default=None,
                   help="killed downloads (default 5; quick 1)")
    p.add_argument("--trial-seed", type=int, default=0, help="seed of the trials' random choices "
                                                             "(default 0)")
    for hidden in ("--worker", "--seed", "--checkpoint-dir", "--worker-download", "--mirror"):
        p.add_argument(hidden, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(Path(args.worker), int(args.seed), args.checkpoint_dir)
    if args.worker_download:
        return data.download_mnist(args.worker_download, mirrors=(args.mirror,))

    start = time.perf_counter()
    cfg = QUICK if args.quick else CONFIG
    counts = dict(kills=args.kills or (2 if args.quick else 20),
                  processes=args.processes or (2 if args.quick else 5),
                  corrupt=args.corrupt or (16 if args.quick else 160),
                  downloads=args.downloads or (1 if args.quick else 5))
    rng = np.random.default_rng(args.trial_seed)
    mnist = data.load_mnist(args.data_dir)
    data_dir = Path(args.data_dir or os.environ.get("NNJAX_DATA_DIR") or data.default_cache_dir())
    if not all((data_dir / f"{n}.gz").is_file() for n in data.FILE_NAMES):
        raise SystemExit(f"error: the data trials need the four gzipped MNIST files in {data_dir}")
    training, _ = common.select_data(mnist, cfg)
    # overhead: all 50,000 images
    timed = cfg if args.quick else dataclasses.replace(cfg, train_size=None)
    with tempfile.TemporaryDirectory(prefix="nnjax-reliability-") as tmp:
        work = Path(tmp)
        (work / "config.json").write_text(json.dumps(dataclasses.asdict(cfg)))
        for a, values in zip("xy", training):
            np.save(work / f"{a}.npy", values, allow_pickle=False)
        det = determinism(work, counts["processes"], cfg.epochs)
        report = {
            "determinism": det,
            "kill_resume": kill_resume(work, counts["kills"], cfg.epochs, det["digests"][0],
                                       det["epoch_s"], rng),
            "corrupt_files": corrupt_files(data_dir, work, counts["corrupt"], rng),
            "interrupted_downloads": interrupted_downloads(data_dir, work, counts["downloads"],
                                                           rng),
            "nan_injection": nan_injection(cfg, training, work, rng),
            "overhead": overhead(timed, common.select_data(mnist, timed)[0], work,
                                 2 if args.quick else 5),
        }
    report |= {"config": dataclasses.asdict(cfg), "counts": counts, "trial_seed": args.trial_seed,
               "training_seeds": [0, 1], "wall_s": time.perf_counter() - start,
               **result_files.environment()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability.json").write_text(json.dumps(report, indent=1))
    (out / "reliability.md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
