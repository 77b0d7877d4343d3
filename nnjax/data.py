"""Load MNIST, Fashion-MNIST and KMNIST (or any data set in the same IDX layout) with the book's
split.

Chapter 1 keeps the first 50,000 of the 60,000 official MNIST training images for
training, holds out the last 10,000 for validation, and tests on the official 10,000
``t10k`` images. :func:`load_mnist` returns exactly that split as NumPy arrays::

    mnist = load_mnist()
    mnist.training.x   # (50000, 784) float32 in [0, 1]; 0 = background, 1 = ink
    mnist.training.y   # (50000,) int32 digit labels 0..9

:func:`load` does the same for any data set in :data:`DATASETS` (``load("fashion-mnist")``).
Every file is checked before use: the IDX header, the payload size and, where pinned,
the SHA-256 of the decompressed bytes. Where files are looked for, and why this module
never unpickles: docs/design_notes.md.
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
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

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

#: SHA-256 of the decompressed Fashion-MNIST files. Computed here from Debian's package
#: ``dataset-fashion-mnist`` 0.0~git20200523.55506a9-1. Debian re-gzipped the files (their
#: gzip headers carry the upload date), so the MD5s that the data set's README gives for
#: the official .gz files cannot match them; the same four decompressed SHA-256s are pinned
#: by several public projects that download the official files from Zalando's GitHub
#: repository and S3 bucket, which is what makes them the official content.
FASHION_MNIST_SHA256 = {
    TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
}
#: The official Fashion-MNIST locations (Zalando's repository, then its S3 bucket).
FASHION_MNIST_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
#: Where Debian's ``dataset-fashion-mnist`` installs the four .gz files (``dpkg -L``).
FASHION_MNIST_SYSTEM_DIRS = ("/usr/share/datasets/fashion-mnist",)

#: KMNIST's decompressed SHA-256s are NOT pinned: its files could not be had on the machine
#: this was written on (no package registry ships them), and we do not pin hashes we could
#: not compute. Downloads are verified instead against the MD5 of each official .gz file
#: as torchvision's KMNIST loader pins them (a second public project pins the same four);
#: copies found on disk get the IDX header and size checks only.
KMNIST_SHA256: dict[str, str] = {}
KMNIST_GZ_MD5 = {
    TRAIN_IMAGES: "bdb82020997e1d708af4cf47b453dcf7",
    TRAIN_LABELS: "e144d726b3acfaa3e44228e80efcd344",
    TEST_IMAGES: "5c965bf0a639b31b8f53240b1b52f4d7",
    TEST_LABELS: "7320c461ea6c1c855c0b718fb2a4b134",
}
#: The official KMNIST location (ROIS-DS Center for Open Data in the Humanities).
KMNIST_MIRRORS = ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/",)

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16",
                   0x0C: "int32", 0x0D: "float32", 0x0E: "float64"}
_FIX = ("Delete it and download it again (load_mnist and load re-fetch files missing from their "
        "cache), or point NNJAX_DATA_DIR (MNIST) or the data set's own variable at a good copy.")
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


class Source(NamedTuple):
    """Where one IDX data set comes from and how its files are checked."""
    title: str  # its name in messages, e.g. "Fashion-MNIST"
    sha256: Mapping[str, str]  # file name -> SHA-256 of the decompressed file (empty: not pinned)
    # file name -> MD5 of the official .gz, checked on download without a SHA-256
    gz_md5: Mapping[str, str]
    mirrors: tuple[str, ...]  # download locations, tried in order; each serves <base><name>.gz
    env: str  # the environment variable naming a folder that holds the files
    system_dirs: tuple[str, ...]  # folders where a system package installs the files


#: The data sets :func:`load` knows, by name.
DATASETS = ("mnist", "fashion-mnist", "kmnist")


def source(name: str) -> Source:
    """The :class:`Source` of data set ``name`` (one of :data:`DATASETS`).

    Built on each call from the module's tables, so that a test (or a user) can point
    them at other files.
    """
    sources = {
        "mnist": Source("MNIST", MNIST_SHA256, {}, MNIST_MIRRORS, "NNJAX_DATA_DIR", ()),
        "fashion-mnist": Source("Fashion-MNIST", FASHION_MNIST_SHA256, {}, FASHION_MNIST_MIRRORS,
                                "NNJAX_FASHION_MNIST_DIR", FASHION_MNIST_SYSTEM_DIRS),
        "kmnist": Source("KMNIST", KMNIST_SHA256, KMNIST_GZ_MD5, KMNIST_MIRRORS,
                         "NNJAX_KMNIST_DIR", ()),
    }
    if name not in sources:
        raise ValueError(f"unknown data set {name!r}; choose one of {list(DATASETS)}")
    return sources[name]


def default_cache_dir(name: str = "mnist") -> Path:
    """Where data set ``name`` is downloaded: ``$NNJAX_CACHE_DIR/<name>``, else
    ``$XDG_CACHE_HOME/nnjax/<name>``, else ``~/.cache/nnjax/<name>``."""
    root = os.environ.get("NNJAX_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
        root = base / "nnjax"
    return Path(root).expanduser() / name


def _urlopen(url: str):
    """Open ``url`` for reading (the one network call; tests replace it)."""
    return urllib.request.urlopen(url, timeout=_TIMEOUT_S)


def _fetch_verified(url: str, directory: Path, name: str, sha256: str | None,
                    md5: str | None = None) -> None:
    """Stream ``url`` into a temp file in ``directory``; rename it into place once verified.

    Verified means: a valid IDX file whose decompressed bytes hash to ``sha256``, or, when
    no SHA-256 is pinned, whose bytes as served hash to the published ``md5``.
    """
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.{os.getpid()}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, _urlopen(url) as response:
            shutil.copyfileobj(response, out)
        raw = Path(tmp).read_bytes()
        if sha256 is None and md5 is not None and hashlib.md5(raw).hexdigest() != md5:
            raise DataError(f"{url}: MD5 of the bytes received is {hashlib.md5(raw).hexdigest()}; "
                            f"expected the published {md5}. The file is corrupt or a different "
                            "version.")
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
        # not ours to judge: not a pid, or another user's process
        except (ValueError, PermissionError):
            pass


def download_dataset(name: str, cache_dir: str | os.PathLike, *,
                     mirrors: tuple[str, ...] | None = None) -> Path:
    """Download the files of data set ``name`` missing from ``cache_dir``, trying each mirror in
    turn.

    Each file is verified (its pinned SHA-256, else the published MD5 of its .gz) before
    it is atomically renamed into place; nothing half-written is left on failure, and the
    part file of a download that was killed outright is removed here. ``mirrors``
    defaults to the data set's official locations. Returns ``cache_dir``; raises
    :class:`DataError` listing every URL tried and why it failed.
    """
    src = source(name)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(cache_dir)
    mirrors = src.mirrors if mirrors is None else tuple(mirrors)
    for file in FILE_NAMES:
        if _find(cache_dir, file) is not None:
            continue
        failures = []
        for base in mirrors:
            url = f"{base.rstrip('/')}/{file}.gz"
            try:
                _fetch_verified(url, cache_dir, file, src.sha256.get(file), src.gz_md5.get(file))
                break
            except Exception as e:  # network, HTTP or verification error: next mirror
                failures.append(f"  {url}: {type(e).__name__}: {e}")
        else:
            raise DataError(f"could not download {src.title}'s {file}.gz into {cache_dir}; tried:\n"
                            + "\n".join(failures or ["  (no mirrors given)"]))
    return cache_dir


def download_mnist(cache_dir: str | os.PathLike, *, mirrors: tuple[str, ...] | None = None) -> Path:
    """:func:`download_dataset` for MNIST: every file is checked against :data:`MNIST_SHA256`;
    ``mirrors`` defaults to :data:`MNIST_MIRRORS`."""
    return download_dataset("mnist", cache_dir, mirrors=mirrors)


def load(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> MNIST:
    """Load data set ``name`` (one of :data:`DATASETS`) with the book's 50,000 / 10,000 / 10,000
    split.

    Looks in ``data_dir`` if given, else in the data set's environment variable's folder
    (:func:`source`; ``NNJAX_DATA_DIR`` for MNIST), where missing files are an error; else
    the cache (:func:`default_cache_dir`), a system folder (Debian's
    ``dataset-fashion-mnist``), or a download into the cache when ``download`` is true.
    Pinned SHA-256s are verified.
    """
    src = source(name)
    env = os.environ.get(src.env)
    if data_dir is not None or env:
        where = "the data_dir argument" if data_dir is not None else src.env
        directory = Path(data_dir if data_dir is not None else env).expanduser()
        if missing := _missing(directory):
            raise DataError(
                f"{src.title} files missing from {directory} (given by {where}): "
                f"{', '.join(missing)} (raw or .gz); nothing was downloaded because a directory "
                f"was given. Copy the four files there, set {src.env} or pass data_dir to a "
                f"directory that has them, or unset {src.env} and pass no data_dir to let nnjax "
                f"download them into {default_cache_dir(name)}.")
        return load_idx_dataset(directory, checksums=src.sha256)
    directory = default_cache_dir(name)
    if missing := _missing(directory):
        installed = next((Path(d) for d in src.system_dirs if not _missing(Path(d))), None)
        if installed is not None:
            return load_idx_dataset(installed, checksums=src.sha256)
        system = "".join(f", {d} (incomplete or absent)" for d in src.system_dirs)
        looked = (f"Looked in: the data_dir argument (not passed), {src.env} (not set), "
                  f"the cache {directory} (missing {', '.join(missing)}){system}.")
        how = (f"To provide {src.title}, set {src.env} or pass data_dir to a directory with "
               "the four IDX files (raw or .gz), or copy them into the cache")
        if not download:
            raise DataError(f"{src.title} not found and download=False. {looked} {how}, "
                            "or call it again with download=True.")
        try:
            download_dataset(name, directory)
        except (DataError, OSError) as e:
            raise DataError(f"{src.title} not found and the download failed. {looked}\n{e}\n"
                            f"{how}, or retry when a mirror is reachable.") from e
    return load_idx_dataset(directory, checksums=src.sha256)


def load_mnist(data_dir: str | os.PathLike | None = None, *, download: bool = True) -> MNIST:
    """:func:`load` for MNIST: the book's 50,000 / 10,000 / 10,000 split.

    Looks in ``data_dir`` if given, else in ``$NNJAX_DATA_DIR`` if set; files
    missing there are an error (nothing is downloaded). Otherwise uses
    :func:`default_cache_dir`, downloading missing files into it when
    ``download`` is true. Every file's decompressed SHA-256 is verified.
    """
    return load("mnist", data_dir, download=download)
