"""End-to-end reliability trials in fresh processes (the --quick variant of
experiments.reliability): SIGKILL and resume, the same key in separate processes,
damaged MNIST files, a download killed mid-stream, and an injected NaN."""

import json

import pytest

from experiments import reliability


@pytest.mark.mnist
@pytest.mark.slow
def test_reliability_quick(tmp_path, mnist_dir):
    report = reliability.main(["--quick", "--kills", "1", "--processes", "2", "--corrupt", "8",
                               "--downloads", "1", "--trial-seed", "3", "--out", str(tmp_path),
                               "--data-dir", str(mnist_dir)])
    saved = json.loads((tmp_path / "reliability.json").read_text())
    assert saved["kill_resume"] == report["kill_resume"]
    assert "| trial | result |" in (tmp_path / "reliability.md").read_text()

    det = saved["determinism"]
    assert det["identical"] and len(det["digests"]) == 2 and det["other_seed_differs"]
    kills = saved["kill_resume"]
    assert kills["trials"] == kills["equal"] == 1 and kills["resumed_from_epochs"][0] >= 1
    for where in ("read", "download"):
        row = saved["corrupt_files"][where]
        assert row["trials"] == 8 and row["accepted_damaged"] == 0
        assert row["refused"] + row["benign_gzip_header"] == 8 and row[
            "named_file_and_hash"] == row["refused"]
    assert saved["corrupt_files"]["download"]["cache_left_clean"] == saved["corrupt_files"][
        "download"]["refused"]
    downloads = saved["interrupted_downloads"]
    assert downloads["never_trusted"] == downloads["cleaned_by_next_download"] == 1
    nan = saved["nan_injection"]
    assert nan["caught_step"] == nan["injected_step"] and f"step {nan['injected_step']}" in nan[
        "message"]
    assert nan["checkpoint_epoch"] == nan["expected_checkpoint_epoch"]
    assert nan["checkpoint_finite"] and nan["checkpoint_equals_clean_run"]
    assert saved["config"]["train_size"] == 1000 and saved["jax_version"]
