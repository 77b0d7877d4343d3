"""The speed benchmarks run, count FLOPs as a hand count does, and PyTorch's twins are the same
networks."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from experiments import (
    bench,
    bench_ch6,
    bench_conv,
    bench_flops,
    bench_plots,
    bench_profile,
    bench_scaling,
)
from nnjax import convnet
from nnjax.network import num_params


@pytest.mark.slow
def test_bench_conv_times_each_variant(tmp_path):
    out = bench_conv.main(["--nets", "6b", "--images", "20", "--rounds", "1", "--variants",
                           "autodiff/im2col,backprop/im2col", "--out", str(tmp_path)])
    times = out["nets"]["6b"]
    assert set(times) == {"autodiff/im2col", "backprop/im2col"}
    assert all(t["best_s"] > 0 for t in times.values())
    assert (tmp_path / "bench_conv.json").exists()
    with pytest.raises(SystemExit, match="unknown variants"):
        bench_conv.main(["--variants", "autodiff/fft"])


@pytest.mark.parametrize("net_id", ["6b", "6f"])
def test_torch_twin_has_the_same_parameters(net_id):
    pytest.importorskip("torch", reason="PyTorch is the optional 'bench' extra")
    from experiments import bench_torch  # imports torch at module level
    spec = bench_conv.NETS[net_id]
    _, params = convnet.build(convnet.network3_arch(**spec)).init(jax.random.key(0), (28, 28, 1))
    model = bench_torch.torch_net(**spec)
    assert sum(p.numel() for p in model.parameters()) == num_params(params)


def test_torch_twin_of_a_dropout_net_has_the_same_parameters():
    pytest.importorskip("torch", reason="PyTorch is the optional 'bench' extra")
    from experiments import bench_torch
    cfg = bench.config("6k")
    _, params = convnet.build(cfg.arch()).init(jax.random.key(0), (28, 28, 1))
    model = bench_torch.torch_net(cfg.convs, cfg.fc, cfg.activation, cfg.dropout)
    assert sum(p.numel() for p in model.parameters()) == num_params(params)


def test_torch_fc_twin_has_the_books_parameter_count():
    pytest.importorskip("torch", reason="PyTorch is the optional 'bench' extra")
    from experiments import bench_torch
    assert sum(p.numel() for p in bench_torch.fc_net((784, 30, 10)).parameters()) == 23_860


def test_flops_of_a_small_fc_net_match_a_hand_count():
    # [4, 3, 2]: forward 2·4·3 + 2·3·2 = 36; ∂C/∂w the same 36; δ back through w² only: 2·3·2 = 12
    matmuls = bench_flops.dense_matmuls((4, 3, 2))
    assert matmuls == [(1, 4, 3), (1, 3, 2)]
    assert bench_flops.training_flops(matmuls) == 36 + 36 + 12


def test_flops_of_a_small_conv_net_match_a_hand_count():
    # 8×8 image, conv 2 filters 5×5 → 4×4×2, pool → 2×2×2 = 8, FC 3, softmax 10
    arch = convnet.network3_arch((2,), (3,), "relu")
    matmuls = bench_flops.arch_matmuls(arch, (8, 8, 1))
    assert matmuls == [(16, 25, 2), (1, 8, 3), (1, 3, 10)]
    want = 2 * 2 * 16 * 25 * 2 + 3 * 2 * 8 * 3 + 3 * 2 * 3 * 10
    assert bench_flops.training_flops(matmuls) == want


@pytest.mark.slow
@pytest.mark.parametrize("net_id", ["6b", "6f", "6k"])
def test_counted_products_have_the_networks_weight_shapes(net_id):
    cfg = bench.config(net_id)
    _, params = convnet.build(cfg.arch()).init(jax.random.key(0), (28, 28, 1))
    weights = [p["w"].size for p in params if isinstance(p, dict) and "w" in p]
    assert [k * n for _, k, n in bench_flops.arch_matmuls(cfg.arch())] == weights


@pytest.mark.slow
def test_bench_writes_a_table_and_json_per_network(tmp_path):
    out = bench.main(["--quick", "--only", "ch1,6b,nnjax,numpy,loop", "--steps", "20",
                      "--slow-steps", "5", "--unroll", "2", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["networks"].keys() == out["networks"].keys() == {"ch1", "6b"}
    assert set(saved["networks"]["ch1"]["implementations"]) == {
        "a_nnjax_scan_backprop", "a_nnjax_scan_autodiff", "a_nnjax_scan_backprop_unroll2",
        "b_numpy_per_example", "c_numpy_matrix", "d_nnjax_step_python_loop", "f_flop_floor"}
    assert set(saved["networks"]["6b"]["implementations"]) == {"a_nnjax_scan_autodiff",
                                                               "a_nnjax_scan_backprop",
                                                               "f_flop_floor"}
    a = saved["networks"]["ch1"]["implementations"]["a_nnjax_scan_backprop"]
    assert a["timed_steps"] == 20 and a["compile_s"] > 0 and a["seconds"] > 0 and a[
        "cpu_seconds"] > 0
    assert saved["networks"]["ch1"]["implementations"]["b_numpy_per_example"]["timed_steps"] == 5
    for key in ("jax_version", "device", "machine"):
        assert saved["environment"][key]
    assert len(saved["load_average_before"]) == 3 and saved["matmul_rate"]["flops_per_s"] > 0
    md = (tmp_path / "bench.md").read_text()
    assert "### ch1" in md and "### 6b" in md and "| d_nnjax_step_python_loop | 5 |" in md


def test_bench_fails_clearly_for_an_unknown_network():
    with pytest.raises(SystemExit, match="unknown run id.*7z"):
        bench.main(["--only", "ch1,7z"])


def test_bench_skips_pytorch_with_a_message_when_it_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    assert bench.torch_epoch(bench.config("ch1"), None, None, 50_000, 1, 1.0, 1) is None
    assert "PyTorch is not installed" in capsys.readouterr().out


@pytest.mark.slow
def test_scaling_curves_are_saved_and_drawn(tmp_path):
    saved = bench_scaling.main(["--quick", "--out", str(tmp_path)])
    curves = json.loads((tmp_path / "bench_scaling.json").read_text())["curves"]
    assert [p["members"] for p in curves["members"]] == [1, 2]
    assert [p["hidden"] for p in curves["width"]] == [30, 60]
    assert [p["images"] for p in curves["data"]] == [1000, 2000]
    assert all(p["seconds"] > 0 and p["floor_s"] > 0 for c in curves.values() for p in c)
    assert curves["members"][1]["floor_s"] == pytest.approx(2 * curves["members"][0]["floor_s"])
    assert saved["environment"]["jax_version"]
    paths = bench_plots.plot_all(tmp_path / "bench_scaling.json")
    assert sorted(p.name for p in paths) == ["bench_data.png", "bench_members.png",
                                             "bench_width.png"]
    assert all(p.stat().st_size > 0 for p in paths)


@pytest.mark.slow
def test_profile_times_every_piece_and_lever(tmp_path):
    out = bench_profile.main(["--steps", "20", "--rounds", "1", "--out", str(tmp_path)])
    assert "+ backward pass (gradient)" in out["pieces"] and "step, unroll 8" in out["levers"]
    rows = [*out["pieces"].values(), *out["levers"].values()]
    assert all(r["us_per_step"] > 0 and r["kernels_per_iteration"] > 0 for r in rows)
    # an unrolled loop body holds the kernels of several steps
    assert out["levers"]["step, unroll 2"]["kernels_per_iteration"] > out["levers"][
        "step, unroll 1"][ "kernels_per_iteration"]
    assert "| step, contiguous slices |" in (tmp_path / "bench_profile.md").read_text()


@pytest.mark.slow
def test_profile_names_the_kernels_of_a_step_in_a_fresh_process(tmp_path):
    """The per-kernel table needs XLA:CPU's trace events, switched on before JAX starts: a new
    process."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    subprocess.run([sys.executable, "-m", "experiments.bench_profile", "--steps", "30", "--rounds",
                    "1", "--out", str(tmp_path)], cwd=Path(__file__).resolve().parents[1], env=env,
                                                check=True,
                   capture_output=True, timeout=300)
    kernels = json.loads((tmp_path / "bench_profile.json").read_text())["kernels"]
    ops = [k["jax_op"] for k in kernels]
    assert "gather" in ops  # fetching the mini-batch
    assert ops.count("dot_general") >= 4  # two forward products, BP2's and BP4's
    assert all(k["median_us"] > 0 and k["shape"].startswith(("f32[", "s32[")) for k in kernels)
    assert f"| {kernels[0]['kernel']} | {kernels[0]['hlo']} |" in (
        tmp_path / "bench_profile.md").read_text()


@pytest.mark.slow
def test_bench_ch6_times_a_lone_and_a_pinned_pair_of_networks(tmp_path):
    result = bench_ch6.main(["--nets", "6g", "--modes", "before,pinned_single,pinned_pair",
                             "--steps", "3", "--rounds", "1", "--out", str(tmp_path)])
    modes = result["nets"]["6g"]
    assert list(modes) == ["before", "pinned_single", "pinned_pair"]
    assert [len(m["runs"]) for m in modes.values()] == [1, 1, 2]  # the pair: two processes at once
    assert all(m["member_steps_per_s"] > 0 and m["cpu_s_per_member_step"] > 0
               for m in modes.values())
    table = (tmp_path / "bench_ch6.md").read_text()
    assert "| 6g | before |" in table and "1.00×" in table and "code: " in table
