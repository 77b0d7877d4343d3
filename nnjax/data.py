"""Load MNIST, and any dataset in the same IDX layout, with the book's split.

Chapter 1 of Nielsen's book keeps the first 50,000 of the 60,000 official
MNIST training images for training, holds out the last 10,000 for validation,
and uses the official 10,000 ``t10k`` images as the test set.
:func:`load_mnist` returns exactly that split as NumPy arrays::

    mnist = load_mnist()
    mnist.training.x   # (50000, 784) float32 in [0, 1]; 0 = background, 1 = ink
    mnist.training.y   # (50000,) int32 digit labels 0..9

Where the files come from, in order: the ``data_dir`` argument, the
``NNJAX_DATA_DIR`` environment variable, else the user cache
(:func:`default_cache_dir`), which is filled from public mirrors on first use.
Files may be gzipped or raw. Every file is checked before use: the IDX header,
the payload size and, for MNIST, the SHA-256 of the decompressed bytes.

This is the only nnjax module that touches files or the network. It keeps no
state in module globals (callers hold the arrays) and never unpickles anything.
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import shutil
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Mapping, NamedTuple

import numpy as np

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

#: SHA-256 of the *decompressed* official MNIST files (the gz bytes vary by mirror).
MNIST_SHA256 = {
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}

#: Public mirrors, tried in order; each serves ``<base><name>.gz``.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16",
                   0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_FIX = ("Delete it and download it again (load_mnist re-fetches files missing from its "
        "cache), or point NNJAX_DATA_DIR at a good copy.")
_TIMEOUT_S = 60


class DataError(ValueError):
    """A data file is missing, corrupt or inconsistent; the message says how to fix it."""


class Split(NamedTuple):
    """One part of a dataset: ``x`` float32 (n, pixels) in [0, 1], ``y`` int32 (n,)."""
    x: np.ndarray
    y: np.ndarray


class MNIST(NamedTuple):
    """The book's three splits. Also returned for other IDX datasets."""
    training: Split
    validation: Split
    test: Split


def _decode_idx(raw: bytes, source: str, sha256: str | None, fix: str) -> np.ndarray:
    """Decompress (if gzipped), validate and wrap IDX bytes; ``source`` names them in errors."""
    if sha256 is not None:  # every refusal of a known file says what it should hash to
        fix = f"Its decompressed bytes should have SHA-256 {sha256.lower()}. {fix}".rstrip()
    zipped = raw[:2] == _GZIP_MAGIC
    if zipped:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{source}: gzip data is corrupt or truncated ({e}). {fix}") from e
    data, size = raw, "decompressed " if zipped else ""
    if len(data) < 4:
        raise DataError(f"{source}: {len(data)} {size}bytes is too short for an IDX "
                        f"header; expected at least 4. {fix}")
    magic, code, ndim = int.from_bytes(data[:4], "big"), data[2], data[3]
    if data[:2] != b"\0\0" or ndim == 0:
        raise DataError(f"{source}: bad magic number 0x{magic:08x}; expected an IDX header "
                        "0x0000TTNN such as 0x00000801 (labels) or 0x00000803 (images). "
                        f"It is not an IDX file. {fix}")
    if code != 0x08:
        kind = _IDX_TYPE_NAMES.get(code, "unknown type")
        raise DataError(f"{source}: IDX type code 0x{code:02x} ({kind}) is not supported; "
                        f"expected 0x08 (unsigned byte), the type MNIST-style files use. {fix}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{source}: header is truncated: {len(data)} {size}bytes, expected "
                        f"at least {header} for {ndim} dimensions. {fix}")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected, actual = math.prod(dims), len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else f"{actual - expected} bytes too long"
        raise DataError(f"{source}: payload is {actual} {size}bytes but the header's shape "
                        f"{dims} needs {expected}; the file is {what}. {fix}")
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256.lower():
            raise DataError(f"{source}: SHA-256 of the {size}bytes is {digest}; the file is "
                            f"corrupt or a different version. {fix}")
    return np.frombuffer(data, np.uint8, count=expected, offset=header).reshape(dims)


def read_idx(path: str | os.PathLike, *, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (gzip or raw, detected by content) as a read-only uint8 array.

    Checks the header (two zero bytes, type code 0x08, dimension count,
    big-endian uint32 sizes) and that the payload holds exactly the product of
    the sizes. If ``sha256`` is given, the decompressed bytes must hash to it.
    Raises :class:`DataError` naming the file, the problem and the expected value.
    """
    path = Path(path)
    return _decode_idx(path.read_bytes(), str(path), sha256, _FIX)


def _find(directory: Path, name: str) -> Path | None:
    """The raw or gzipped copy of ``name`` in ``directory``, or None."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _missing(directory: Path) -> list[str]:
    """Which of the four file names ``directory`` lacks (in either form)."""
    return [name for name in FILE_NAMES if _find(directory, name) is None]


def _read_split(images: Path, labels: Path, checksums: Mapping[str, str]) -> Split:
    """Read one images/labels pair into a :class:`Split`, checking they match."""
    arrays = []
    for path, ndim, kind in ((images, 3, "image"), (labels, 1, "label")):
        array = read_idx(path, sha256=checksums.get(path.name.removesuffix(".gz")))
        if array.ndim != ndim:
            raise DataError(f"{path}: has {array.ndim} dimensions, expected {ndim} for an "
                            f"IDX {kind} file; the file is misnamed or wrong. {_FIX}")
        arrays.append(array)
    x, y = arrays
    if len(x) != len(y):
        raise DataError(f"{images} holds {len(x)} images but {labels} holds {len(y)} labels; "
                        "expected the same count. The two files come from different "
                        "datasets or one is damaged: replace them with a matching pair.")
    pixels = np.divide(x.reshape(len(x), -1), np.float32(255), dtype=np.float32)
    return Split(pixels, y.astype(np.int32))


def load_idx_dataset(directory: str | os.PathLike, *,
                     checksums: Mapping[str, str] | None = None,
                     n_validation: int = 10_000) -> MNIST:
    """Load a directory holding the four MNIST-named IDX files (raw or ``.gz``).

    Works for MNIST, Fashion-MNIST, KMNIST and the like. ``checksums`` maps a
    file name without ``.gz`` to the SHA-256 of its decompressed bytes; files
    not in it are not hashed. The last ``n_validation`` training examples
    become the validation split (``0 <= n_validation <`` training count).
    """
    directory = Path(directory)
    if missing := _missing(directory):
        raise DataError(f"{directory}: missing {', '.join(missing)} (raw or .gz). "
                        "Put the four IDX files there or pass the directory that has them.")
    if n_validation < 0:
        raise ValueError(f"n_validation must be >= 0, got {n_validation}")
    found = {name: _find(directory, name) for name in FILE_NAMES}
    checksums = checksums or {}
    train = _read_split(found[TRAIN_IMAGES], found[TRAIN_LABELS], checksums)
    test = _read_split(found[TEST_IMAGES], found[TEST_LABELS], checksums)
    n = len(train.y)
    if n_validation >= n:
        raise ValueError(f"n_validation={n_validation} must be smaller than the {n} "
                         f"training examples in {found[TRAIN_IMAGES]}")
    k = n - n_validation
    return MNIST(Split(train.x[:k], train.y[:k]), Split(train.x[k:], train.y[k:]), test)


def default_cache_dir() -> Path:
    """Where MNIST is downloaded: ``$NNJAX_CACHE_DIR/mnist``, else
    ``$XDG_CACHE_HOME/nnjax/mnist``, else ``~/.cache/nnjax/mnist``."""
    root = os.environ.get("NNJAX_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        root = base / "nnjax"
    return Path(root).expanduser() / "mnist"


def _urlopen(url: str):
    """Open ``url`` for reading (the one network call; tests replace it)."""
    return urllib.request.urlopen(url, timeout=_TIMEOUT_S)


def _fetch_verified(url: str, directory: Path, name: str, sha256: str) -> None:
    """Stream ``url`` into a temp file in ``directory``; rename it into place once verified."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.{os.getpid()}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, _urlopen(url) as response:
            shutil.copyfileobj(response, out)
        raw = Path(tmp).read_bytes()
        _decode_idx(raw, url, sha256, fix="")
        final = directory / (f"{name}.gz" if raw[:2] == _GZIP_MAGIC else name)
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove_stale_parts(directory: Path) -> None:
    """Delete partial downloads (``.<name>.<pid>.<random>.part``) whose process no longer runs.

    A download killed outright (SIGKILL, power loss) cannot clean up after itself. Its
    part file is never trusted (only the final names are read), but it would stay in the
    cache; a part file of a live process (a concurrent download) is left alone.
    """
    for part in directory.glob(".*.part"):
        pid = part.name.split(".")[2]
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            part.unlink(missing_ok=True)
        except (ValueError, PermissionError):  # not ours to judge: not a pid, or another user's process
            pass


def download_mnist(cache_dir: str | os.PathLike, *, mirrors: tuple[str, ...] | None = None) -> Path:
    """Download the MNIST files missing from ``cache_dir``, trying each mirror in turn.

    Each file is checked against :data:`MNIST_SHA256` before it is atomically
    renamed into place; nothing half-written is left on failure, and the part
    file of a download that was killed outright is removed here. Defaults to
    :data:`MNIST_MIRRORS`. Returns ``cache_dir``; raises :class:`DataError`
    listing every URL tried and why it failed.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(cache_dir)
    mirrors = MNIST_MIRRORS if mirrors is None else tuple(mirrors)
    for name in FILE_NAMES:
        if _find(cache_dir, name) is not None:
            continue
        failures = []
        for base in mirrors:
            url = f"{base.rstrip('/')}/{name}.gz"
            try:
                _fetch_verified(url, cache_dir, name, MNIST_SHA256[name])
                break
            except Exception as e:  # network, HTTP or verification error: next mirror
                failures.append(f"  {url}: {type(e).__name__}: {e}")
        else:
            raise DataError(f"could not download {name}.gz into {cache_dir}; tried:\n"
                            + "\n".join(failures or ["  (no mirrors given)"]))
    return cache_dir


def load_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = True) -> MNIST:
    """Load MNIST with the book's 50,000 / 10,000 / 10,000 split.

    Looks in ``data_dir`` if given, else in ``$NNJAX_DATA_DIR`` if set; files
    missing there are an error (nothing is downloaded). Otherwise uses
    :func:`default_cache_dir`, downloading missing files into it when
    ``download`` is true. Every file's decompressed SHA-256 is verified.
    """
    env = os.environ.get("NNJAX_DATA_DIR")
    if data_dir is not None or env:
        where = "the data_dir argument" if data_dir is not None else "NNJAX_DATA_DIR"
        directory = Path(data_dir if data_dir is not None else env).expanduser()
        if missing := _missing(directory):
            raise DataError(
                f"MNIST files missing from {directory} (given by {where}): "
                f"{', '.join(missing)} (raw or .gz); nothing was downloaded because a "
                "directory was given. Copy the four files there, set NNJAX_DATA_DIR or "
                "pass data_dir to a directory that has them, or unset NNJAX_DATA_DIR and "
                f"pass no data_dir to let nnjax download them into {default_cache_dir()}.")
        return load_idx_dataset(directory, checksums=MNIST_SHA256)
    directory = default_cache_dir()
    if missing := _missing(directory):
        looked = (f"Looked in: the data_dir argument (not passed), NNJAX_DATA_DIR (not set), "
                  f"the cache {directory} (missing {', '.join(missing)}).")
        how = ("To provide MNIST, set NNJAX_DATA_DIR or pass data_dir to a directory with "
               "the four IDX files (raw or .gz), or copy them into the cache")
        if not download:
            raise DataError(f"MNIST not found and download=False. {looked} {how}, "
                            "or call load_mnist(download=True).")
        try:
            download_mnist(directory)
        except (DataError, OSError) as e:
            raise DataError(f"MNIST not found and the download failed. {looked}\n{e}\n"
                            f"{how}, or retry when a mirror is reachable.") from e
    return load_idx_dataset(directory, checksums=MNIST_SHA256)
