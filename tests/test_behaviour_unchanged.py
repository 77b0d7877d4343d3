"""The refactor of issue 15 must not change what the chapter scripts compute.

tests/golden/ holds records written by the code *before* that refactor (commit named in
tests/golden/README.md): each ``--quick`` run's accuracy histories, and the parameters
after one epoch of one run per chapter, read from that run's checkpoint. This test runs
the same commands with today's code and compares: parameters within float32 rounding
(1e-5 relative), accuracy histories within 0.1 percentage points.

Those tolerances hold on the CPU model the records were written on: another model gets
other XLA kernels, whose rounding the quick runs amplify (a ch1 weight 4e-5 apart after
one epoch, a chaotic ch3 run 3 points). So there is one set of records per CPU model:
tests/golden/ itself for the AMD EPYC VM, tests/golden/cpu/<model>/ for others.

``python tests/test_behaviour_unchanged.py DIR``, run in a checkout of the commit the
README names, writes a set for this machine's CPU into DIR.
"""

import json
import re
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from nnjax import checkpoint

GOLDEN = Path(__file__).parent / "golden"


def cpu_slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def golden() -> Path:
    """This CPU model's records, else the AMD EPYC ones (which then fail on float noise)."""
    from experiments import result_files

    own = GOLDEN / "cpu" / cpu_slug(result_files.cpu_name())
    return own if own.is_dir() else GOLDEN


def written_on(folder: Path) -> str:
    return (f"records of {folder.relative_to(GOLDEN.parent)}; on a CPU model without its own "
            "records, write them as tests/golden/README.md says")


# (chapter, run id, --quick arguments); every id runs with its first seed only
QUICK = {
    "ch1": ["--only", "1a,1b"],
    "ch3": ["--only", "3b,3g,3h,3m", "--no-plots"],
    "ch6": ["--only", "6b,6f,6k", "--no-plots"],
}
# one run per chapter whose parameters after one epoch are compared
ONE_EPOCH = {"ch1": "1a", "ch3": "3g", "ch6": "6f"}

pytestmark = [pytest.mark.mnist, pytest.mark.slow]


def histories(records: list[dict]) -> dict[str, list[float]]:
    """Every accuracy series of every record, keyed by record id, seed and series name."""
    out = {}
    for r in records:
        for s in r.get("per_seed", []):
            for name, series in {**s, **s.get("history", {})}.items():
                if "accuracy" in name and isinstance(series, list) and all(
                        isinstance(v, (int, float)) for v in series):
                    out[f"{r['id']}/seed{s.get('seed')}/{name}"] = [float(v) for v in series]
    return out


def run_chapter(chapter: str, out: Path, extra: list[str]) -> list[dict]:
    module = __import__(f"experiments.{chapter}", fromlist=["main"])
    module.main(["--quick", "--seeds", "1", "--quiet", "--out", str(out), *QUICK[chapter], *extra])
    data = json.loads((out / f"{chapter}.json").read_text())
    return data["records"] if isinstance(data, dict) else data


def params_after_one_epoch(chapter: str, tmp: Path) -> list[np.ndarray]:
    """The float arrays of ONE_EPOCH[chapter] seed 0's checkpoint after its first epoch.

    Those are its parameters (and, for ch6, copies of its conv weights); scalars, keys
    and predictions are left out, so the comparison does not depend on how the code
    arranges the rest of its training state.
    """
    ckpts = tmp / "ckpt"
    module = __import__(f"experiments.{chapter}", fromlist=["main"])
    module.main(["--quick", "--seeds", "1", "--quiet", "--out", str(tmp / "one"), "--only",
                 ONE_EPOCH[chapter], "--set", "epochs=1", "--checkpoint-dir", str(ckpts)]
                + (["--no-plots"] if chapter != "ch1" else []))
    files = sorted(ckpts.rglob("epoch-000001.ckpt"))
    assert len(files) == 1, f"expected one checkpoint after one epoch, found {files}"
    leaves = checkpoint._read(files[0])["leaves"]
    return [a for a in map(np.asarray, leaves) if a.dtype == np.float32 and a.ndim >= 1]


def write_golden(tmp: Path, dest: Path) -> None:
    """The records of this checkout's code on this machine, into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for chapter in QUICK:
        records = run_chapter(chapter, tmp / chapter, [])
        (dest / f"{chapter}_histories.json").write_text(json.dumps(histories(records), indent=1)
                                                        + "\n")
        arrays = params_after_one_epoch(chapter, tmp / f"{chapter}_one")
        np.savez_compressed(dest / f"{chapter}_one_epoch.npz", *arrays)
    for chapter, args in OLD_RUNS.items():
        module = __import__(f"experiments.{chapter}", fromlist=["main"])
        module.main(["--quick", "--seeds", "1", "--quiet", "--set", "epochs=1", *args,
                     "--checkpoint-dir", str(dest / "old_checkpoints" / chapter), "--out",
                     str(tmp / f"{chapter}_old")])


@pytest.mark.parametrize("chapter", sorted(QUICK))
def test_quick_histories_match_the_records_saved_before_the_refactor(chapter, tmp_path):
    folder = golden()
    want = json.loads((folder / f"{chapter}_histories.json").read_text())
    got = histories(run_chapter(chapter, tmp_path, []))
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=0.1, rtol=0,
                                   err_msg=f"{name} ({written_on(folder)})")


@pytest.mark.parametrize("chapter", sorted(ONE_EPOCH))
def test_parameters_after_one_epoch_match_the_records_saved_before_the_refactor(chapter, tmp_path):
    folder = golden()
    with np.load(folder / f"{chapter}_one_epoch.npz") as saved:
        want = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    got = params_after_one_epoch(chapter, tmp_path)
    for i, w in enumerate(want):  # each saved array must be matched by one of today's
        match = next((j for j, g in enumerate(got) if g.shape == w.shape
                      and np.allclose(g, w, rtol=1e-5, atol=1e-6)), None)
        assert match is not None, \
            f"{chapter}: saved array {i} {w.shape} has no equal in today's checkpoint " \
            f"({written_on(folder)})"
        got.pop(match)

# checkpoints written before the refactor (tests/golden/old_checkpoints, see its README):
# (chapter, arguments of the run that wrote them after one epoch)
OLD_RUNS = {
    "ch1": ["--only", "1a"],
    "ch6": ["--only", "6f", "--set", "fc=20", "--no-plots"],
}


@pytest.mark.parametrize("chapter", sorted(OLD_RUNS))
def test_a_checkpoint_written_before_the_refactor_still_resumes(chapter, tmp_path):
    """Resuming the old one-epoch checkpoint for a second epoch equals two epochs from scratch."""
    import shutil

    common = ["--quick", "--seeds", "1", "--quiet", "--set", "epochs=2", *OLD_RUNS[chapter]]
    module = __import__(f"experiments.{chapter}", fromlist=["main"])
    old = tmp_path / "old"
    folder = golden()
    shutil.copytree(folder / "old_checkpoints" / chapter, old)
    module.main([*common, "--checkpoint-dir", str(old), "--resume", "--out",
                 str(tmp_path / "resumed")])
    module.main([*common, "--checkpoint-dir", str(tmp_path / "fresh"), "--out",
                 str(tmp_path / "fresh_out")])
    resumed, fresh = (sorted(d.rglob("epoch-000002.ckpt")) for d in (old, tmp_path / "fresh"))
    assert len(resumed) == len(fresh) == 1
    a, b = (checkpoint._read(f[0])["leaves"] for f in (resumed, fresh))
    floats = [(np.asarray(x), np.asarray(y)) for x, y in zip(a, b) if not isinstance(x, dict)]
    assert len(a) == len(b) and floats
    for x, y in floats:
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=written_on(folder))


if __name__ == "__main__":
    import tempfile

    jax.config.update("jax_platforms", "cpu")
    with tempfile.TemporaryDirectory() as d:
        write_golden(Path(d), Path(sys.argv[1]))
    sys.exit(0)
