"""Fashion-MNIST and KMNIST: each loader path on synthetic IDX files, checksum refusals,
the data set named in records and tables, and the ladder's and sweep's quick modes."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from experiments import ch1, ch6, ladder, result_files, sweep_grid
from nnjax import data
from nnjax.data import FILE_NAMES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS, DataError

TABLES = {"mnist": "MNIST_SHA256", "fashion-mnist": "FASHION_MNIST_SHA256",
          "kmnist": "KMNIST_SHA256"}
ENV = {"mnist": "NNJAX_DATA_DIR", "fashion-mnist": "NNJAX_FASHION_MNIST_DIR",
       "kmnist": "NNJAX_KMNIST_DIR"}


def idx(array: np.ndarray) -> bytes:
    """uint8 IDX bytes: two zero bytes, type 0x08, the rank, big-endian sizes, the payload."""
    array = np.asarray(array, np.uint8)
    return bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                   for d in array.shape) + array.tobytes()


def synthetic(n_train: int = 10_040, n_test: int = 500, side: int = 28, seed: int = 0) -> dict[str,
    bytes]:
    """Decompressed IDX bytes of a random 10-class data set under the four MNIST file names."""
    rng = np.random.default_rng(seed)
    return {data.TRAIN_IMAGES: idx(rng.integers(0, 256, (n_train, side, side))),
            data.TRAIN_LABELS: idx(rng.integers(0, 10, n_train)),
            data.TEST_IMAGES: idx(rng.integers(0, 256, (n_test, side, side))),
            data.TEST_LABELS: idx(rng.integers(0, 10, n_test))}


def write(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, payload in files.items():
        (directory / f"{name}.gz").write_bytes(gzip.compress(payload, mtime=0))
    return directory


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No data set variable set, the cache inside tmp_path, no system folder, no network."""
    for var in ENV.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NNJAX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIRS", ())
    monkeypatch.setattr(data, "_urlopen", lambda url: pytest.fail(f"unexpected download: {url}"))
    return tmp_path


@pytest.fixture
def files():
    return synthetic(n_train=10_012, n_test=7, side=2)


def pin(monkeypatch, name: str, files: dict[str, bytes]) -> None:
    """Point data set ``name``'s pinned SHA-256s at ``files`` (KMNIST pins none: left empty)."""
    if name != "kmnist":
        monkeypatch.setattr(data, TABLES[name], {k: hashlib.sha256(v).hexdigest() for k,
                                                 v in files.items()})


@pytest.mark.parametrize("name", data.DATASETS)
@pytest.mark.parametrize("where", ["argument", "variable", "cache"])
def test_each_loader_path(monkeypatch, env, files, name, where):
    pin(monkeypatch, name, files)
    folder = write(env / "cache" / name if where == "cache" else env / "given", files)
    if where == "variable":
        monkeypatch.setenv(ENV[name], str(folder))
    ds = data.load(name, folder if where == "argument" else None)
    # the book's split: last 10,000 training images validate
    assert [len(s.y) for s in ds] == [12, 10_000, 7]
    np.testing.assert_array_equal(ds.test.y, np.frombuffer(files[TEST_LABELS][8:], np.uint8))


def test_fashion_mnist_found_in_the_debian_package_folder(monkeypatch, env, files):
    pin(monkeypatch, "fashion-mnist", files)
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIRS", (str(env / "absent"),
                                                            str(write(env / "usr", files))))
    assert len(data.load("fashion-mnist").training.y) == 12
    assert not (env / "cache" / "fashion-mnist").exists()  # nothing downloaded or copied


def test_another_data_sets_variable_is_not_used(monkeypatch, env, files):
    """NNJAX_DATA_DIR names MNIST's folder: asking for Fashion-MNIST must not read it."""
    pin(monkeypatch, "fashion-mnist", files)
    monkeypatch.setenv("NNJAX_DATA_DIR", str(write(env / "mnist", files)))
    with pytest.raises(DataError, match="NNJAX_FASHION_MNIST_DIR") as info:
        data.load("fashion-mnist", download=False)
    assert str(env / "cache" / "fashion-mnist") in str(info.value)


def test_wrong_checksum_names_the_file_and_the_expected_hash(monkeypatch, env, files):
    expected = "0" * 64
    monkeypatch.setattr(data, "FASHION_MNIST_SHA256",
                        {k: hashlib.sha256(v).hexdigest() for k,
                         v in files.items()} | {TRAIN_LABELS: expected})
    folder = write(env / "given", files)
    with pytest.raises(DataError) as info:
        data.load("fashion-mnist", folder)
    message = str(info.value)
    assert str(folder / f"{TRAIN_LABELS}.gz") in message and expected in message
    assert hashlib.sha256(files[TRAIN_LABELS]).hexdigest() in message  # and what it hashed to


def test_the_pinned_fashion_mnist_hashes_refuse_other_files(env, files):
    with pytest.raises(DataError, match=data.FASHION_MNIST_SHA256[TRAIN_IMAGES]):
        data.load("fashion-mnist", write(env / "given", files))


def serve(monkeypatch, content):
    """Replace the network: each URL's bytes are ``content(file name)``; record the URLs asked
    for."""
    asked = []

    def urlopen(url):
        asked.append(url)
        return io.BytesIO(content(url.rsplit("/", 1)[-1].removesuffix(".gz")))
    monkeypatch.setattr(data, "_urlopen", urlopen)
    return asked


def test_fashion_mnist_download_is_verified_and_atomic(monkeypatch, env, files):
    pin(monkeypatch, "fashion-mnist", files)
    asked = serve(monkeypatch, lambda name: gzip.compress(files[name]))
    assert len(data.load("fashion-mnist").validation.y) == 10_000
    assert all(url.startswith(data.FASHION_MNIST_MIRRORS[0]) for url in asked) and len(asked) == 4
    cache = env / "cache" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in FILE_NAMES)


def test_kmnist_download_checked_against_the_published_md5(monkeypatch, env, files):
    served = {name: gzip.compress(payload, mtime=0) for name, payload in files.items()}
    monkeypatch.setattr(data, "KMNIST_GZ_MD5", {k: hashlib.md5(v).hexdigest() for k,
                                                v in served.items()})
    serve(monkeypatch, served.get)
    assert len(data.load("kmnist").training.y) == 12

    # same content, other bytes
    damaged = dict(served, **{TRAIN_IMAGES: gzip.compress(files[TRAIN_IMAGES], mtime=1)})
    cache = env / "cache" / "kmnist"
    for path in cache.iterdir():
        path.unlink()
    serve(monkeypatch, damaged.get)
    with pytest.raises(DataError) as info:
        data.load("kmnist")
    message = str(info.value)
    assert data.KMNIST_MIRRORS[0] in message and hashlib.md5(served[
        TRAIN_IMAGES]).hexdigest() in message
    assert not (cache / f"{TRAIN_IMAGES}.gz").exists() and not list(cache.glob(".*.part"))


def test_unknown_data_set():
    with pytest.raises(ValueError, match="fashion-mnist"):
        data.load("cifar10")


# ---------------------------------------------------------------- records and tables


@pytest.fixture
def fashion_dir(monkeypatch, env):
    """Synthetic 28×28 Fashion-MNIST-named files that the loader accepts, and their folder."""
    files = synthetic()
    pin(monkeypatch, "fashion-mnist", files)
    return write(env / "fashion", files)


def test_a_record_names_its_data_set(fashion_dir, tmp_path):
    out = tmp_path / "out"
    records = ch1.main(["--quick", "--quiet", "--dataset", "fashion-mnist", "--only", "1a,B2",
                        "--data-dir", str(fashion_dir), "--out", str(out)])
    saved = json.loads((out / "ch1.json").read_text())
    assert [r["dataset"] for r in saved] == ["fashion-mnist"] * 2 == [r["dataset"] for r in records]
    assert saved[0]["config"]["dataset"] == "fashion-mnist"
    table = (out / "ch1.md").read_text()
    assert "| id | data set |" in table and "| 1a | fashion-mnist |" in table
    assert "95.42" not in table and "22.25" not in table  # no book figures beside other data


def test_mnist_tables_keep_the_book_column():
    record = {"id": "1a", "book": 95.42, "best": 95.0, "mean": 95.0, "std": 0.0, "seeds": [0],
              "metric": "peak", "wall_s": 1.0, "device": "cpu", "dataset": "mnist"}
    assert "| 1a | 95.42% | 95.00% |" in result_files.markdown_table([record])
    assert "Data: MNIST." in result_files.markdown_table([record])
    assert "95.42" not in result_files.markdown_table([record | {"dataset": "kmnist"}])


def test_other_data_tables_mark_changed_configs():
    record = {"id": "6f", "book": 99.23, "best": 88.0, "mean": 88.0, "std": 0.0, "seeds": [0],
              "metric": "peak", "wall_s": 1.0, "device": "cpu", "dataset": "fashion-mnist"}
    assert result_files.markdown_table([record]).splitlines()[2].endswith("| 1.0 |  |")
    changed = result_files.markdown_table([record | {"modified": ["epochs=15"], "quick": True}])
    assert "smoke run (--quick); modified: --set epochs=15 |" in changed


def test_set_dataset_is_refused(capsys):
    with pytest.raises(SystemExit):
        ch1.main(["--quick", "--set", "dataset=kmnist"])
    assert "--dataset" in capsys.readouterr().err


def test_ch6_mnist_checkpoint_folders_keep_their_names():
    cfg = next(c for c in ch6.RUNS if c.id == "6f")
    assert "dataset" not in ch6.training_settings(cfg)
    fashion = ch6.run_dir(Path("r"), cfg.__class__(**{**cfg.__dict__, "dataset": "fashion-mnist"}),
                          "seed0")
    assert fashion != ch6.run_dir(Path("r"), cfg, "seed0")


# ---------------------------------------------------------------- the ladder and the sweep


@pytest.mark.slow
def test_ladder_quick_end_to_end(fashion_dir, tmp_path):
    out = tmp_path / "out"
    results = Path(__file__).resolve().parents[1] / "results"
    records = ladder.main(["--quick", "--quiet", "--dataset", "fashion-mnist", "--data-dir",
                           str(fashion_dir), "--out", str(out), "--mnist-results", str(results)])
    assert [r["id"] for r in records] == list(ladder.MILESTONES)
    assert {r["dataset"] for r in records} == {"fashion-mnist"}
    by_id = {r["id"]: r for r in records}
    assert tuple(by_id["6f"]["config"]["convs"]) == (20, 40)  # through chapter 6's own training
    assert by_id["6g"]["config"]["expand"] == "shifts"
    md = (out / "ladder_fashion-mnist.md").read_text()
    assert "| 6g | conv 20,40 → FC 100, shifts expanded data |" in md
    mnist_1a = next(r for r in json.loads((results / "ch1.json").read_text())
                    if r["id"] == "1a")["best"]
    # our saved MNIST figure and the book's beside the new data's
    assert f"| {mnist_1a:.2f}% | 95.42% |" in md


@pytest.mark.slow
def test_ladder_resumes_stored_conv_rows_and_merges(fashion_dir, tmp_path, capsys):
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    common_args = ["--quick", "--quiet", "--data-dir", str(fashion_dir), "--out", str(out),
                   "--checkpoint-dir", str(ckpt)]
    first = ladder.main(common_args + ["--only", "1a,6b"])
    assert sorted(ckpt.rglob("*.ckpt")) and sorted((out / ch6.STORE).rglob("*.npz"))
    with pytest.raises(SystemExit) as refused:  # the 6b network exists: never trained over
        ladder.main(common_args + ["--only", "6b"])
    assert refused.value.code == 2 and "add --resume" in capsys.readouterr().err
    again = ladder.main(common_args + ["--only", "6b", "--resume", "--merge"])
    assert again[0]["per_seed"] == first[1]["per_seed"]  # read back, not trained again
    saved = json.loads((out / "ladder_fashion-mnist.json").read_text())
    assert [r["id"] for r in saved] == ["1a", "6b"]


def test_ladder_caps_conv_epochs_on_cpu_unless_full():
    assert ladder.milestone("6f", "kmnist", quick=False,
                            full=False).epochs == ladder.CPU_CONV_EPOCHS
    assert ladder.milestone("6f", "kmnist", quick=False, full=True).epochs == 60
    # FC rows: the book's settings
    assert ladder.milestone("3h", "kmnist", quick=False, full=False).epochs == 60


@pytest.mark.slow
def test_sweep_quick_end_to_end(fashion_dir, tmp_path):
    result = sweep_grid.main(["--quick", "--quiet", "--data-dir", str(fashion_dir), "--out",
                              str(tmp_path)])
    assert len(result["best_validation_percent"]) == 4 and result["dataset"] == "fashion-mnist"
    # each member trains as its own run would, up to float rounding that vmap may reorder
    np.testing.assert_allclose(result["best_validation_percent"], result["one_at_a_time_percent"],
                               atol=2.0)
    assert result["sweep_s"] > 0 and result["one_at_a_time_s"] > 0
    png = tmp_path / "sweep_fashion-mnist.png"
    first = png.read_bytes()
    sweep_grid.heat_map(result, png)
    assert png.read_bytes() == first  # byte-stable: no version stamp


@pytest.mark.slow
def test_conv_sweep_quick_end_to_end(fashion_dir, tmp_path):
    """`--net 6f`: chapter 6's conv net as a vmapped η × λ grid, members equal to their own runs up
    to rounding, each with its best-validation epoch and the test accuracy there."""
    result = sweep_grid.main(["--net", "6f", "--quick", "--quiet", "--data-dir", str(fashion_dir),
                              "--out", str(tmp_path)])
    assert result["net"] == "6f" and result["network"].startswith("conv 20,40")
    assert list(result["config"]["convs"]) == [20, 40]
    assert result["config"]["dataset"] == "fashion-mnist"
    assert len(result["test_at_best_validation_percent"]) == 4
    assert len(result["best_validation_epoch"]) == 4
    history = result["history_percent"]
    assert np.shape(history["validation"]) == (1, 4) == np.shape(history["test"])  # 1 epoch
    assert [max(h) for h in zip(*history["validation"])] == result["best_validation_percent"]
    np.testing.assert_allclose(result["best_validation_percent"], result["one_at_a_time_percent"],
                               atol=3.0)
    assert (tmp_path / "sweep_6f_fashion-mnist.png").stat().st_size > 0
