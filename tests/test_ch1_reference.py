"""The NumPy reference of chapter 1: it trains what nnjax trains, and its spread statistics are
exact."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import ch1_reference, report
from experiments import numpy_baselines as nb
from nnjax import backprop, optim, train
from nnjax.network import Network


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_best_of_k_equals_brute_force_over_every_subset(k):
    values = np.random.default_rng(k).normal(95, 0.3, size=7).round(2)
    values[2] = values[5]  # a tie
    threshold = float(np.median(values))
    bests = [max(c) for c in itertools.combinations(values, k)]
    out = ch1_reference.best_of_k(values, k, threshold)
    assert out["expected_best"] == pytest.approx(np.mean(bests), abs=1e-12)
    assert out["share_reaching"] == pytest.approx(np.mean([b >= threshold for b in bests]),
                                                  abs=1e-12)


def test_best_of_k_refuses_more_draws_than_values():
    with pytest.raises(ValueError, match=r"1 <= k <= 2"):
        ch1_reference.best_of_k([95.0, 96.0], 3)


def test_reference_and_nnjax_take_the_same_sgd_steps():
    """From the same float64 weights over the same mini-batches, the NumPy reference's updates
    w → w − (η/m) Σ∇C_x equal nnjax's compiled epoch (hand backprop) to rounding."""
    rng = np.random.default_rng(0)
    sizes, eta, m, steps = (20, 7, 4), 3.0, 5, 6
    ws, bs = nb.init_large(rng, sizes, np.float64)
    x, y = rng.random((m * steps, sizes[0])), rng.integers(0, sizes[-1], m * steps)
    targets = np.eye(sizes[-1])[y]
    ref_w, ref_b = [w.copy() for w in ws], [b.copy() for b in bs]
    for i in range(steps):  # nnjax without a shuffle takes the batches in order
        rows = slice(i * m, (i + 1) * m)
        nabla_w, nabla_b = nb.backprop_matrix(ref_w, ref_b, x[rows], targets[rows])
        ref_w = [w - eta / m * g for w, g in zip(ref_w, nabla_w)]
        ref_b = [b - eta / m * g for b, g in zip(ref_b, nabla_b)]

    net = Network(sizes)
    params = tuple({"w": jnp.asarray(w), "b": jnp.asarray(b)} for w, b in zip(ws, bs))
    opt = optim.sgd(eta)
    epoch = train.make_epoch(backprop.make_grad(net), opt, m, shuffle=False)
    params = epoch(train.State(params, opt.init(params), jax.random.key(0)), jnp.asarray(x),
                   jnp.asarray(y)).params
    for layer, w, b in zip(params, ref_w, ref_b):
        np.testing.assert_allclose(layer["w"], w, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(layer["b"], b, rtol=1e-10, atol=1e-10)


def test_quick_run_writes_records_and_compares_with_saved_nnjax_runs(mnist_dir, tmp_path, capsys):
    records = ch1_reference.main(["--quick", "--only", "1a", "--out", str(tmp_path), "--data-dir",
                                  str(mnist_dir)])
    (record,) = records
    assert record["id"] == "1a" and record["metric"] == "peak" and len(record["per_seed"]) == 1
    assert "float64" in record["implementation"] and tuple(record["config"]["sizes"]) == (784, 30,
                                                                                          10)
    assert 30 < record["best"] <= 100  # one epoch on 5,000 images, from N(0, 1) weights
    saved = json.loads((tmp_path / "ch1_reference.json").read_text())
    assert saved[0]["per_seed"][0]["peak"] == record["best"]
    assert "[1a NumPy seed 0] Epoch 0:" in capsys.readouterr().out

    # the report sets the reference's spread beside nnjax's when both files are there
    nnjax = {**record, "per_seed": [{"seed": s, "peak": p} for s,
                                    p in enumerate([95.0, 95.3, 94.8, 95.1])]}
    (tmp_path / "ch1.json").write_text(json.dumps([nnjax]))
    text = "\n".join(report.reference_section(tmp_path, [nnjax]))
    assert "| 1a | nnjax (float32) | 4 | 94.80% |" in text
    assert "| 1a | NumPy reference (float64) | 1 |" in text


def test_unknown_ids_are_refused(mnist_dir, tmp_path):
    with pytest.raises(SystemExit):
        ch1_reference.main(["--quick", "--only", "B2", "--out", str(tmp_path), "--data-dir",
                            str(mnist_dir)])
