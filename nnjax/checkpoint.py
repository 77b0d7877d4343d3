"""Training checkpoints (not in the book): the whole state of a run between epochs, written
atomically.

network2.py's ``save``/``load`` (ch3) keep a trained network; resuming bit for bit also
needs the optimiser state, the key, the epoch count and the history. One verified file
per checkpoint, ``epoch-NNNNNN.ckpt``: ``NNJAXCK1``, the SHA-256 of the body, the body
(flax msgpack: ``state``'s leaves in pytree order, ``history``, ``config``).
`Checkpoints` is the piece of `nnjax.train.fit`. See docs/design.md ("Checkpoints").
"""

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import serialization

from nnjax import validate
from nnjax.train import Piece, Run, State

MAGIC = b"NNJAXCK1"
FORMAT = 1
_NAME = re.compile(r"epoch-(\d{6,})\.ckpt")


class CheckpointError(ValueError):
    """A checkpoint is damaged, missing or does not fit this run; the message says which and why."""


class CheckpointWarning(UserWarning):
    """A damaged newest checkpoint was skipped in favour of an older one."""


class Checkpoint(NamedTuple):
    epoch: int  # epochs completed when it was written
    state: Any  # the pytree passed to `save`, restored into the structure of ``like``
    history: dict
    config: dict | None
    path: Path


def tree_digest(tree: Any) -> str:
    """SHA-256 over every leaf's dtype, shape and bytes (typed keys: their key data)."""
    h = hashlib.sha256()
    for leaf in map(_encode_leaf, jax.tree_util.tree_leaves(tree)):
        a = leaf["data"] if isinstance(leaf, dict) else leaf
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _encode_leaf(leaf: Any) -> np.ndarray | dict:
    if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
        return {"impl": str(jax.random.key_impl(leaf)),
                "data": np.asarray(jax.random.key_data(leaf))}
    return np.asarray(jax.device_get(leaf))


def _plain(value: Any) -> Any:
    """``value`` as msgpack stores it: tuples as lists, NumPy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def _diff(saved: Any, now: Any, where: str = "") -> list[str]:
    """Where two configs differ, as "a.b: <saved> in the checkpoint, <now> now" lines."""
    if isinstance(saved, dict) and isinstance(now, dict):
        return [d for k in sorted(set(saved) | set(now))
                for d in _diff(saved.get(k), now.get(k), f"{where}{k}.")]
    return [] if saved == now else [f"{where[:-1] or 'config'}: {saved!r} in the checkpoint, "
                                    f"{now!r} now"]


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """The checkpoint files in ``directory``, oldest first (none if it does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.fullmatch(p.name))]
    return [p for _, p in sorted(found)]


def saved_epochs(directory: str | os.PathLike | None) -> int:
    """The epoch count of the newest checkpoint file in ``directory`` (0 when it has none), read
    from its name."""
    found = list_checkpoints(directory) if directory is not None else []
    return int(_NAME.fullmatch(found[-1].name).group(1)) if found else 0


def save(directory: str | os.PathLike, epoch: int, state: Any, *, history: dict | None = None,
         config: dict | None = None, keep: int = 2) -> Path:
    """Write the checkpoint of ``epoch`` completed epochs atomically; keep the newest ``keep``.

    One run per directory: leftover temporary files (from a killed writer) are removed.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1 (checkpoints to keep), got {keep!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(".epoch-*.ckpt.tmp"):
        stale.unlink(missing_ok=True)
    body = serialization.msgpack_serialize({
        "format": FORMAT, "epoch": int(epoch), "history": _plain(history or {}),
        "config": _plain(config),
        "leaves": [_encode_leaf(leaf) for leaf in jax.tree_util.tree_leaves(state)],
    })
    path = directory / f"epoch-{epoch:06d}.ckpt"
    tmp = directory / f".{path.name}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + hashlib.sha256(body).digest() + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fd = os.open(directory, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for old in list_checkpoints(directory)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def _read(path: Path) -> dict:
    """The verified body of one checkpoint file; CheckpointError if it is damaged."""
    raw = path.read_bytes()
    header = len(MAGIC) + 32
    if len(raw) < header or raw[: len(MAGIC)] != MAGIC:
        raise CheckpointError(f"{path}: not an nnjax checkpoint (expected it to start with "
                              f"{MAGIC!r}, got {raw[:len(MAGIC)]!r} in a {len(raw)}-byte file)")
    expected, body = raw[len(MAGIC):header].hex(), raw[header:]
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise CheckpointError(f"{path}: damaged: the SHA-256 of its {len(body)}-byte body is "
                              f"{actual}, its header records {expected}")
    content = serialization.msgpack_restore(body)
    if content.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {content.get('format')!r}, expected "
                              f"{FORMAT}")
    return content


def _decode(content: dict, like: Any, path: Path) -> Any:
    """Rebuild the state in the structure of ``like``, checking every leaf's shape and dtype."""
    leaves_like, treedef = jax.tree_util.tree_flatten_with_path(like)
    saved = content["leaves"]
    if len(saved) != len(leaves_like):
        raise CheckpointError(f"{path} holds {len(saved)} arrays but this run's state has "
                              f"{len(leaves_like)}: it was written by a different network or "
                              "optimiser")
    out = []
    for (where, want), got in zip(leaves_like, saved):
        want = _encode_leaf(want)
        key_want, key_got = isinstance(want, dict), isinstance(got, dict)
        if key_want != key_got or (key_want and want["impl"] != got["impl"]):
            raise CheckpointError(f"{path}: {jax.tree_util.keystr(where)} is a PRNG key in one of "
                                  "the checkpoint and this run but not the other (or of another "
                                  "implementation)")
        w, g = (want["data"], got["data"]) if isinstance(want, dict) else (want, got)
        if (w.shape, w.dtype) != (g.shape, g.dtype):
            raise CheckpointError(f"{path}: {jax.tree_util.keystr(where)} is "
                                  f"{g.dtype}{list(g.shape)} in the checkpoint but "
                                  f"{w.dtype}{list(w.shape)} in this run")
        out.append(jax.random.wrap_key_data(g, impl=got["impl"]) if isinstance(got, dict)
                   else jax.numpy.asarray(g))
    return jax.tree_util.tree_unflatten(treedef, out)


def restore(directory: str | os.PathLike, like: Any, *,
            config: dict | None = None) -> Checkpoint | None:
    """The newest intact checkpoint in ``directory``, or None if there is none at all.

    like: a pytree with the structure, shapes and dtypes of the saved state (e.g. the
        freshly initialised state of the same run).
    config: if given, the checkpoint's config must equal it (else CheckpointError).
    A damaged newest file is skipped with a `CheckpointWarning`; if every file is
    damaged, CheckpointError lists each one and why.
    """
    problems = []
    for path in reversed(list_checkpoints(directory)):
        try:
            content = _read(path)
        except (CheckpointError, OSError) as e:
            problems.append(str(e))
            continue
        if problems:
            warnings.warn(f"skipped damaged checkpoint(s), using {path}: " + "; ".join(problems),
                          CheckpointWarning, stacklevel=2)
        if config is not None and (diff := _diff(content["config"], _plain(config))):
            raise CheckpointError(f"{path} was written by a run with different settings "
                                  f"({'; '.join(diff)}). Resume with the same settings, or use "
                                  "a new checkpoint directory.")
        return Checkpoint(int(content["epoch"]), _decode(content, like, path), content["history"],
                          content["config"], path)
    if problems:
        raise CheckpointError(f"no intact checkpoint in {directory}:\n  " + "\n  ".join(problems)
                              + "\nDelete the directory to start afresh.")
    return None


def resume_point(directory: str | os.PathLike, like: Any, *, config: dict | None, key: Any,
                 epochs: int, resume: bool) -> Checkpoint | None:
    """The checkpoint a training loop continues from, or None to start afresh.

    Without ``resume`` a directory that already holds checkpoints is refused (one run per
    directory); with it, the newest intact checkpoint is restored into ``like`` (a dict
    with the run's PRNG key under "key") and checked against ``config``, ``key`` (the
    same key, i.e. seed) and ``epochs`` (at least as many as it holds).
    """
    if not resume:
        if existing := list_checkpoints(directory):
            raise CheckpointError(f"checkpoint_dir {directory} already holds checkpoints "
                                  f"({existing[-1].name}, ...): "
                             "pass resume=True (--resume) to continue from them, or use an empty "
                             "directory")
        return None
    found = restore(directory, like, config=config)
    if found is None:
        return None
    if tree_digest(found.state["key"]) != tree_digest(key):
        raise CheckpointError(f"{found.path} was written by a run with another key; resume with "
                              "the same key (seed) or use a new checkpoint_dir")
    if found.epoch > epochs:
        raise CheckpointError(f"epochs={epochs} but {found.path} already holds {found.epoch} "
                              "epochs; ask for at least as many epochs as were run")
    return found


def layout(state: State) -> dict:
    """The pytree a checkpoint saves: ``{"params", "opt_state", "key", **state.extra}``."""
    return {"params": state.params, "opt_state": state.opt_state, "key": state.key, **state.extra}


class Checkpoints(Piece):
    """Save the run every ``every`` epochs, after the last and when stopped; ``resume`` continues
    from the newest intact one, bit-identical. pin: settings a resume must match besides the
    program's and data's (config: all of them); notes: ``save()``/``load(json)`` of the JSON
    kept instead of the history (docs/design.md, "Checkpoint layout")."""

    def __init__(self, directory, every: int = 1, resume: bool = False, pin=None,
                 config: dict | None = None, notes=None):
        validate.integer("checkpoint_every", every, 1)
        self.directory, self.every, self.resume = directory, every, resume
        self.pin, self.config, self.notes = pin, config, notes

    def start(self, run: Run) -> None:
        if self.config is None:
            x, y = run.data
            shapes = [list(x.shape), str(x.dtype)]
            shapes += [] if run.program.members else [list(y.shape), str(y.dtype)]
            self.config = {**run.program.settings, "training_data": shapes, "run": self.pin}
        found = resume_point(self.directory, layout(run.state), config=self.config,
                             key=run.state.key, epochs=run.epochs, resume=self.resume)
        if found is None:
            return
        s = found.state
        run.state = run.state.replace(params=s["params"], opt_state=s["opt_state"], key=s["key"],
                                      epoch=jax.numpy.asarray(found.epoch, jax.numpy.int32),
                                      extra={k: s[k] for k in run.state.extra})
        run.history = (found.history if self.notes is None
                       else self.notes.load(found.history) or run.history)
        run.checkpoint, run.stop = found.path, bool(run.state.extra.get("stopped", False))

    def after(self, run: Run) -> None:
        e = int(run.state.epoch)
        if e % self.every == 0 or e == run.epochs or run.stop:
            run.checkpoint = save(self.directory, e, layout(run.state), config=self.config,
                                  history=run.history if self.notes is None else self.notes.save())
