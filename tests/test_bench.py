"""The benchmark only has to run here (a tiny configuration); timings never go into tests."""

import json

from xpnet.bench import _init_params, run, step_flops
from xpnet.bench.contenders import BookContender, JaxContender, TunedNumpyContender, XpnetContender, book_code
from xpnet.cli import main


def test_quick_benchmark_runs_every_table():
    res = run(quick=True, steps=5, with_jax=False, log=lambda *a: None)
    tables = res["tables"]
    assert {"book_step", "tiny_step", "big_step", "protocol", "memory"} <= set(tables)
    rows = tables["book_step"]["rows"]
    assert {"xpnet cpu", "book NumPy float64", "hand-tuned NumPy float32"} <= set(rows)
    assert rows["xpnet cpu"]["ratio_to_xpnet"] == 1.0
    assert all(r["median"] > 0 and r["min"] <= r["median"] <= r["max"] for r in rows.values())
    assert "matmul floor (products only)" in tables["big_step"]["rows"]
    assert res["machine"]["matmul_gflops_f32"] > 0
    assert step_flops([784, 50, 10], 100) == 2 * (2 * 100 * (784 * 50 + 50 * 10)) + 2 * 100 * 50 * 10


def test_tuned_reference_learns_like_xpnet():
    """The hand-tuned contender is a real implementation of the same step, not a stand-in."""
    import xpnet

    (x, t), (xt, tt) = xpnet.load_mnist()
    data = ((x[:3000], t[:3000]), (xt[:1000], tt[:1000]))
    p = _init_params([784, 50, 10], 0.01, 0)
    a, b = XpnetContender(p, data, 0.1, 100, 0), TunedNumpyContender(p, data, 0.1, 100, 0)
    a.steps(300)
    b.steps(300)
    acc_a, acc_b = a.evaluate()[1], b.evaluate()[1]
    assert acc_a > 0.8 and abs(acc_a - acc_b) < 0.05


def test_bench_command_writes_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["bench", "--quick", "--steps", "5", "--no-protocol", "--no-jax", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert "book_step" in data["tables"] and "ratio to xpnet cpu" in capsys.readouterr().out


def test_book_reference_code_agrees_with_xpnet():
    """The book's own code (as the benchmark runs it) and xpnet give the same gradients."""
    import numpy as np

    import xpnet

    p = _init_params([12, 6, 10], 0.5, 1)
    book = book_code(np).TwoLayerNet(p)
    net = xpnet.TwoLayerNet(12, 6, 10, device="cpu", dtype="float64", params=p)
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, 12)), rng.integers(0, 10, 5)
    gb, gx = book.gradient(x, np.eye(10)[t]), net.gradient(x, t)
    for k in gb:
        np.testing.assert_allclose(gb[k], gx[k], rtol=1e-10, atol=1e-12)
    data = ((rng.random((300, 12)), rng.integers(0, 10, 300)), (rng.random((50, 12)), rng.integers(0, 10, 50)))
    c = BookContender(p, data, 0.1, 10, 0)
    c.steps(5)
    assert len(c.train_loss_list) == 5 and 0 <= c.evaluate()[1] <= 1


def test_jax_contender_learns():
    import pytest

    pytest.importorskip("jax")
    import xpnet

    (x, t), (xt, tt) = xpnet.load_mnist()
    c = JaxContender(_init_params([784, 50, 10], 0.01, 0), ((x[:3000], t[:3000]), (xt[:1000], tt[:1000])), 0.1, 100, 0)
    c.steps(300)
    assert c.evaluate()[1] > 0.8
