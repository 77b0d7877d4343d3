"""The speed benchmarks run, and PyTorch's twin of a network3 net is the same network."""

import jax
import pytest

from experiments import bench_conv
from nnjax import convnet
from nnjax.network import num_params


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
