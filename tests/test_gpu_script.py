"""scripts/ch6_gpu.sh, the prepared GPU run of 6l, works as written (its --quick form on a CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.mnist
def test_the_gpu_script_runs_6l_and_records_its_wall_time(mnist_dir, tmp_path):
    env = {**os.environ, "NNJAX_DATA_DIR": str(mnist_dir), "PYTHON": sys.executable}
    done = subprocess.run([str(ROOT / "scripts" / "ch6_gpu.sh"), str(tmp_path), "--quick"], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    records = json.loads((tmp_path / "ch6.json").read_text())
    records = records["records"] if isinstance(records, dict) else records
    assert [r["id"] for r in records] == ["6l"] and len(records[0]["per_seed"][0]["seeds"]) == 2
    assert int((tmp_path / "wall_s.txt").read_text()) > 0
