"""Tests for nnjax.data: IDX parsing, validation, the book's split, download safety."""
from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from nnjax import data
from nnjax.data import (
    FILE_NAMES,
    MNIST,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    DataError,
    Split,
    default_cache_dir,
    download_mnist,
    load_idx_dataset,
    load_mnist,
    read_idx,
)

# ---------------------------------------------------------------- helpers

def idx_bytes(array: np.ndarray, *, type_code: int = 0x08) -> bytes:
    """Encode a uint8 array as IDX: 0x00 0x00, type code, ndim, big-endian uint32 dims."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, type_code, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, payload: bytes, *, gz: bool) -> Path:
    """Write raw IDX bytes to ``path`` (appending .gz and compressing when ``gz``)."""
    if gz:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def fake_dataset(n_train: int = 12, n_test: int = 5, rows: int = 2, cols: int = 3,
                 seed: int = 0) -> dict[str, bytes]:
    """Decompressed IDX bytes for the four MNIST file names, with random contents."""
    rng = np.random.default_rng(seed)
    return {
        TRAIN_IMAGES: idx_bytes(rng.integers(0, 256, (n_train, rows, cols))),
        TRAIN_LABELS: idx_bytes(rng.integers(0, 10, n_train)),
        TEST_IMAGES: idx_bytes(rng.integers(0, 256, (n_test, rows, cols))),
        TEST_LABELS: idx_bytes(rng.integers(0, 10, n_test)),
    }


def write_dataset(directory: Path, files: dict[str, bytes], *, gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, payload in files.items():
        write_idx(directory / name, payload, gz=gz)
    return directory


def sha256s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.sha256(payload).hexdigest() for name, payload in files.items()}


def decode(payload: bytes) -> np.ndarray:
    """Independent reference decoder for the synthetic files."""
    ndim = payload[3]
    dims = [int.from_bytes(payload[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(payload[4 + 4 * ndim:], np.uint8).reshape(dims)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No NNJAX_DATA_DIR; cache root inside tmp_path."""
    monkeypatch.delenv("NNJAX_DATA_DIR", raising=False)
    monkeypatch.setenv("NNJAX_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "mnist"


@pytest.fixture
def no_download(monkeypatch):
    """Fail the test if anything tries to reach the network."""
    def forbidden(url):
        pytest.fail(f"unexpected download attempt: {url}")
    monkeypatch.setattr(data, "_urlopen", forbidden)


# ---------------------------------------------------------------- read_idx

@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("shape", [(7,), (4, 2, 3), (0, 28, 28), (2, 1, 1, 5)])
def test_read_idx_round_trip(tmp_path, gz, shape):
    array = np.random.default_rng(1).integers(0, 256, shape).astype(np.uint8)
    path = write_idx(tmp_path / "x-idx", idx_bytes(array), gz=gz)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, array)


def test_gzip_detected_by_content_not_suffix(tmp_path):
    array = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    zipped = tmp_path / "no-suffix"
    zipped.write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(zipped), array)
    raw_named_gz = tmp_path / "raw.gz"
    raw_named_gz.write_bytes(idx_bytes(array))
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)


def test_read_idx_checksum_accepted(tmp_path):
    payload = idx_bytes(np.arange(10))
    path = write_idx(tmp_path / "labels", payload, gz=True)
    digest = hashlib.sha256(payload).hexdigest()
    np.testing.assert_array_equal(read_idx(path, sha256=digest.upper()), np.arange(10))


def _refused(path, match, **kwargs):
    with pytest.raises(DataError, match=match) as info:
        read_idx(path, **kwargs)
    assert str(path) in str(info.value)
    return str(info.value)


@pytest.mark.parametrize("gz", [False, True])
def test_bad_magic(tmp_path, gz):
    payload = b"\x12\x34" + idx_bytes(np.arange(4))[2:]
    msg = _refused(write_idx(tmp_path / "f", payload, gz=gz), "bad magic number 0x12340801")
    assert "0x00000801" in msg and "NNJAX_DATA_DIR" in msg


def test_zero_dimensions_refused(tmp_path):
    _refused(write_idx(tmp_path / "f", b"\0\0\x08\0", gz=False), "bad magic")


@pytest.mark.parametrize("code, kind", [(0x0D, "float32"), (0x0B, "int16"), (0x42, "unknown")])
def test_unsupported_type_code(tmp_path, code, kind):
    path = write_idx(tmp_path / "f", idx_bytes(np.arange(4), type_code=code), gz=False)
    msg = _refused(path, f"type code 0x{code:02x}")
    assert kind in msg and "0x08" in msg


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_payload(tmp_path, gz):
    payload = idx_bytes(np.zeros((3, 4, 5)))[:-7]
    msg = _refused(write_idx(tmp_path / "f", payload, gz=gz), "truncated")
    assert "53" in msg and "60" in msg  # actual and expected byte counts


def test_extra_bytes(tmp_path):
    payload = idx_bytes(np.zeros((3, 4, 5))) + b"\0\0\0"
    msg = _refused(write_idx(tmp_path / "f", payload, gz=False), "3 bytes too long")
    assert "63" in msg and "60" in msg


@pytest.mark.parametrize("payload", [b"", b"\0\0", b"\0\0\x08\x03\0\0\0\x01"])
def test_truncated_header(tmp_path, payload):
    _refused(write_idx(tmp_path / "f", payload, gz=False), "too short|header is truncated")


def test_corrupt_gzip(tmp_path):
    zipped = gzip.compress(idx_bytes(np.arange(100)))
    path = tmp_path / "f.gz"
    path.write_bytes(zipped[: len(zipped) // 2])
    _refused(path, "gzip data is corrupt or truncated")


def test_wrong_checksum(tmp_path):
    payload = idx_bytes(np.arange(10))
    path = write_idx(tmp_path / "labels", payload, gz=True)
    msg = _refused(path, "SHA-256", sha256="ab" * 32)
    assert "ab" * 32 in msg and hashlib.sha256(payload).hexdigest() in msg


# ---------------------------------------------------------------- load_idx_dataset

@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_dataset_split(tmp_path, gz):
    files = fake_dataset(n_train=12, n_test=5)
    ds = load_idx_dataset(write_dataset(tmp_path, files, gz=gz), n_validation=4)
    assert isinstance(ds, MNIST) and all(isinstance(s, Split) for s in ds)
    images, labels = decode(files[TRAIN_IMAGES]), decode(files[TRAIN_LABELS])
    expected_x = images.reshape(12, 6).astype(np.float32) / 255
    for split, sl in ((ds.training, slice(0, 8)), (ds.validation, slice(8, 12))):
        assert split.x.dtype == np.float32 and split.y.dtype == np.int32
        np.testing.assert_array_equal(split.x, expected_x[sl])
        np.testing.assert_array_equal(split.y, labels[sl])
    np.testing.assert_array_equal(ds.test.y, decode(files[TEST_LABELS]))
    assert ds.test.x.shape == (5, 6)
    assert 0.0 <= ds.training.x.min() and ds.training.x.max() <= 1.0


def test_pixel_scaling_endpoints(tmp_path):
    files = fake_dataset()
    files[TRAIN_IMAGES] = idx_bytes(np.array([[[0, 255]]] * 3))
    files[TRAIN_LABELS] = idx_bytes(np.array([1, 2, 3]))
    ds = load_idx_dataset(write_dataset(tmp_path, files), n_validation=1)
    np.testing.assert_array_equal(ds.training.x, [[0.0, 1.0], [0.0, 1.0]])


def test_mixed_raw_and_gz(tmp_path):
    files = fake_dataset()
    for i, (name, payload) in enumerate(files.items()):
        write_idx(tmp_path / name, payload, gz=bool(i % 2))
    assert load_idx_dataset(tmp_path, n_validation=2).training.x.shape == (10, 6)


def test_checksums_argument(tmp_path):
    files = fake_dataset()
    directory = write_dataset(tmp_path, files)
    load_idx_dataset(directory, checksums=sha256s(files), n_validation=2)
    bad = sha256s(files) | {TEST_LABELS: "0" * 64}
    with pytest.raises(DataError, match="SHA-256") as info:
        load_idx_dataset(directory, checksums=bad, n_validation=2)
    assert f"{TEST_LABELS}.gz" in str(info.value)


@pytest.mark.parametrize("images, labels", [(TRAIN_IMAGES, TRAIN_LABELS),
                                            (TEST_IMAGES, TEST_LABELS)])
def test_count_mismatch(tmp_path, images, labels):
    files = fake_dataset()
    files[labels] = idx_bytes(np.arange(3))
    with pytest.raises(DataError, match="same count") as info:
        load_idx_dataset(write_dataset(tmp_path, files), n_validation=2)
    assert images in str(info.value) and labels in str(info.value)


def test_swapped_files_refused(tmp_path):
    files = fake_dataset()
    files[TRAIN_IMAGES], files[TRAIN_LABELS] = files[TRAIN_LABELS], files[TRAIN_IMAGES]
    with pytest.raises(DataError, match="dimensions") as info:
        load_idx_dataset(write_dataset(tmp_path, files), n_validation=2)
    assert TRAIN_IMAGES in str(info.value)


@pytest.mark.parametrize("n_validation", [12, 13, -1])
def test_bad_n_validation(tmp_path, n_validation):
    directory = write_dataset(tmp_path, fake_dataset(n_train=12))
    with pytest.raises(ValueError, match="n_validation"):
        load_idx_dataset(directory, n_validation=n_validation)


def test_missing_files_in_dataset_dir(tmp_path):
    write_idx(tmp_path / TRAIN_IMAGES, fake_dataset()[TRAIN_IMAGES], gz=True)
    with pytest.raises(DataError) as info:
        load_idx_dataset(tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and TRAIN_LABELS in msg and TEST_IMAGES in msg
    assert TRAIN_IMAGES + "," not in msg


# ---------------------------------------------------------------- where load_mnist looks

def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("NNJAX_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "nnjax" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "nnjax" / "mnist"
    monkeypatch.setenv("NNJAX_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine" / "mnist"


@pytest.mark.parametrize("via_env", [False, True])
def test_missing_explicit_dir_never_downloads(monkeypatch, tmp_path, clean_env, no_download,
                                              via_env):
    given = tmp_path / "given"
    given.mkdir()
    write_idx(given / TEST_LABELS, idx_bytes(np.arange(5)), gz=False)  # 1 of the 4 files
    if via_env:
        monkeypatch.setenv("NNJAX_DATA_DIR", str(given))
    with pytest.raises(DataError) as info:
        load_mnist(None if via_env else given)
    msg = str(info.value)
    assert str(given) in msg and ("NNJAX_DATA_DIR" if via_env else "data_dir argument") in msg
    for name in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES):
        assert name in msg
    assert "nothing was downloaded" in msg and "NNJAX_DATA_DIR" in msg
    assert not clean_env.exists()


def test_explicit_dir_and_env_load(monkeypatch, tmp_path, clean_env, no_download):
    files = fake_dataset(n_train=10_003, rows=1, cols=1)
    monkeypatch.setattr(data, "MNIST_SHA256", sha256s(files))
    directory = write_dataset(tmp_path / "d", files)
    ds = load_mnist(directory)
    assert [len(s.y) for s in ds] == [3, 10_000, 5]
    monkeypatch.setenv("NNJAX_DATA_DIR", str(directory))
    np.testing.assert_array_equal(load_mnist().validation.y, ds.validation.y)


def test_load_mnist_verifies_known_checksums(tmp_path, clean_env, no_download):
    directory = write_dataset(tmp_path / "d", fake_dataset(n_train=10_003, rows=1, cols=1))
    with pytest.raises(DataError, match="SHA-256"):
        load_mnist(directory)


def test_download_disabled(clean_env, no_download):
    with pytest.raises(DataError, match="download=False") as info:
        load_mnist(download=False)
    assert str(clean_env) in str(info.value) and "NNJAX_DATA_DIR" in str(info.value)


# ---------------------------------------------------------------- downloads

@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local directory of gzipped synthetic files, with MNIST_SHA256 pointing at them."""
    files = fake_dataset(n_train=10_003, rows=1, cols=1)
    monkeypatch.setattr(data, "MNIST_SHA256", sha256s(files))
    directory = write_dataset(tmp_path / "mirror", files)
    monkeypatch.setattr(data, "MNIST_MIRRORS", (directory.as_uri() + "/",))
    return directory, files


def serve(monkeypatch, mapping):
    """Replace the network: URL -> bytes, or an exception to raise mid-stream."""
    def fake_urlopen(url):
        name = url.rsplit("/", 1)[-1].removesuffix(".gz")
        content = mapping(name)
        if isinstance(content, BaseException):
            class Broken(io.BytesIO):
                def read(self, *args):
                    if self.tell():
                        raise content
                    return super().read(100)
            return Broken(gzip.compress(b"x" * 1000))
        return io.BytesIO(content)
    monkeypatch.setattr(data, "_urlopen", fake_urlopen)


def test_download_via_file_urls(mirror, clean_env):
    directory, files = mirror
    ds = load_mnist()  # nothing cached: downloads from the (file://) mirror
    assert sorted(p.name for p in clean_env.iterdir()) == sorted(f"{n}.gz" for n in FILE_NAMES)
    assert [len(s.y) for s in ds] == [3, 10_000, 5]
    np.testing.assert_array_equal(ds.test.y, decode(files[TEST_LABELS]))


def test_download_skips_present_files(mirror, clean_env, monkeypatch):
    directory, files = mirror
    write_dataset(clean_env, {TRAIN_LABELS: files[TRAIN_LABELS]}, gz=False)
    fetched = []
    serve(monkeypatch, lambda name: fetched.append(name) or gzip.compress(files[name]))
    download_mnist(clean_env, mirrors=("https://example.invalid/",))
    assert sorted(fetched) == sorted(set(FILE_NAMES) - {TRAIN_LABELS})
    assert (clean_env / TRAIN_LABELS).is_file()


def test_download_raw_bytes_stored_without_gz_suffix(mirror, clean_env, monkeypatch):
    _, files = mirror
    serve(monkeypatch, lambda name: files[name])
    download_mnist(clean_env, mirrors=("https://example.invalid/",))
    assert sorted(p.name for p in clean_env.iterdir()) == sorted(FILE_NAMES)


@pytest.mark.parametrize("corrupt", ["flip", "truncate", "garbage"])
def test_corrupt_download_refused_and_removed(mirror, clean_env, monkeypatch, corrupt):
    _, files = mirror

    def content(name):
        payload = bytearray(files[name])
        if corrupt == "flip":
            payload[-1] ^= 1
        elif corrupt == "truncate":
            del payload[-2:]
        else:
            payload = bytearray(b"<html>not found</html>")
        return gzip.compress(bytes(payload))

    serve(monkeypatch, content)
    with pytest.raises(DataError) as info:
        download_mnist(clean_env, mirrors=("https://a.invalid/", "https://b.invalid/"))
    msg = str(info.value)
    assert "https://a.invalid/" in msg and "https://b.invalid/" in msg
    assert list(clean_env.iterdir()) == []


def test_exception_mid_download_leaves_nothing(mirror, clean_env, monkeypatch):
    serve(monkeypatch, lambda name: ConnectionResetError("connection reset"))
    with pytest.raises(DataError, match="connection reset"):
        download_mnist(clean_env, mirrors=("https://a.invalid/",))
    assert list(clean_env.iterdir()) == []


def test_keyboard_interrupt_mid_download_leaves_nothing(mirror, clean_env, monkeypatch):
    serve(monkeypatch, lambda name: KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        download_mnist(clean_env, mirrors=("https://a.invalid/",))
    assert list(clean_env.iterdir()) == []


def test_offline_error_lists_places_and_mirrors(monkeypatch, clean_env):
    def offline(url):
        raise urllib.error.URLError(OSError("network is unreachable"))
    monkeypatch.setattr(data, "_urlopen", offline)
    monkeypatch.setattr(data, "MNIST_MIRRORS", ("https://m1.invalid/", "https://m2.invalid/"))
    with pytest.raises(DataError) as info:
        load_mnist()
    msg = str(info.value)
    for needle in (str(clean_env), "NNJAX_DATA_DIR", "data_dir", "https://m1.invalid/",
                   "https://m2.invalid/", "network is unreachable"):
        assert needle in msg
    assert list(clean_env.iterdir()) == []


def test_download_over_local_http_with_fallback(mirror, clean_env):
    directory, files = mirror
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.func.log_message = lambda *args: None
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            base = f"http://127.0.0.1:{server.server_address[1]}"
            download_mnist(clean_env, mirrors=(f"{base}/missing/", f"{base}/"))
        finally:
            server.shutdown()
    assert sorted(p.name for p in clean_env.iterdir()) == sorted(f"{n}.gz" for n in FILE_NAMES)
    ds = load_idx_dataset(clean_env, checksums=data.MNIST_SHA256)
    np.testing.assert_array_equal(ds.training.y, decode(files[TRAIN_LABELS])[:3])


# ---------------------------------------------------------------- real MNIST

@pytest.mark.mnist
def test_mnist_shapes_and_dtypes(mnist):
    for split, n in zip(mnist, (50_000, 10_000, 10_000)):
        assert split.x.shape == (n, 784) and split.x.dtype == np.float32
        assert split.y.shape == (n,) and split.y.dtype == np.int32


@pytest.mark.mnist
def test_mnist_values(mnist):
    for split in mnist:
        assert split.x.min() == 0.0 and split.x.max() == 1.0
        assert split.y.min() == 0 and split.y.max() == 9
    assert mnist.training.y[0] == 5 and mnist.test.y[0] == 7
    assert 0.05 < mnist.training.x.mean() < 0.25  # mostly background (0), some ink (1)


@pytest.mark.mnist
def test_mnist_split_matches_official_training_file(mnist, mnist_dir):
    name = TRAIN_LABELS if (mnist_dir / TRAIN_LABELS).is_file() else f"{TRAIN_LABELS}.gz"
    labels = read_idx(mnist_dir / name, sha256=data.MNIST_SHA256[TRAIN_LABELS])
    np.testing.assert_array_equal(np.concatenate([mnist.training.y, mnist.validation.y]),
                                  labels)


# ---------------------------------------------------------------- refusals name the expected hash

@pytest.mark.parametrize("damage", [
    lambda p: b"\x12\x34" + p[2:],  # wrong magic
    lambda p: p[:-3],  # truncated payload
    lambda p: p[:6],  # truncated header
    lambda p: p[:2] + b"\x0d" + p[3:],  # wrong type code
    lambda p: p[:4] + (int.from_bytes(p[4:8], "big") + 1).to_bytes(4, "big") + p[8:],  # wrong count
    lambda p: p[:-1] + bytes([p[-1] ^ 1]),  # flipped payload bit
])
@pytest.mark.parametrize("gz", [False, True])
def test_every_refusal_of_a_known_file_names_it_and_its_hash(tmp_path, damage, gz):
    payload = idx_bytes(np.arange(20).reshape(4, 5))
    digest = hashlib.sha256(payload).hexdigest()
    path = write_idx(tmp_path / "images", damage(payload), gz=gz)
    _refused(path, f"should have SHA-256 {digest}", sha256=digest)


def test_stale_part_files_of_dead_processes_are_removed(mirror, clean_env):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    clean_env.mkdir(parents=True)
    stale = clean_env / f".{TRAIN_IMAGES}.{dead.stdout.strip()}.abc123.part"
    # a concurrent download in this process
    live = clean_env / f".{TEST_IMAGES}.{os.getpid()}.def456.part"
    odd = clean_env / ".notes.part"
    for p in (stale, live, odd):
        p.write_bytes(b"half a file")
    download_mnist(clean_env)
    assert not stale.exists() and live.exists() and odd.exists()
    assert sorted(p.name for p in clean_env.glob("*.gz")) == sorted(f"{n}.gz" for n in FILE_NAMES)
