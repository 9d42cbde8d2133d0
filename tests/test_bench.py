"""benchmarks/: the benchmark only has to run here (a tiny configuration); timings never go into tests.

The comparison code sits beside the package (``benchmarks/`` at the repository root), not in
it: these tests import it from the checkout, run it as ``python -m benchmarks`` and check that
``xpnet bench`` hands it its options where it imports and says how to run it where it does not.
"""

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pytest puts the root on the path (tests/ is a package), unless told otherwise
    sys.path.insert(0, str(ROOT))

import xpnet  # noqa: E402
import benchmarks  # noqa: E402
from benchmarks import step_flops  # noqa: E402
from benchmarks.contenders import (BookContender, JaxContender, LeanNumpyNet, NumpyNetLoopContender,  # noqa: E402
                                   TunedNumpyContender, TunedNumpyNet, TunedNumpyOneThreadContender, draw_batches)
from benchmarks import harness  # noqa: E402
from benchmarks.harness import _init_params, accelerator_table, is_accelerator, run  # noqa: E402
from benchmarks.xpnet_contenders import BookLoopContender, XpnetContender, new_net  # noqa: E402
from xpnet import cli  # noqa: E402

from .book import book_net_with  # noqa: E402

BOOK_ROWS = {"xpnet cpu", "xpnet, book-style loop", "xpnet, book-style loop + net.loss", "book NumPy float64",
             "hand-tuned NumPy float32", "idiomatic PyTorch cpu", "hand-tuned f32, yardstick",
             "book loop, tuned NumPy net", "book loop, lean NumPy net"}
QUICK = ["--quick", "--steps", "5", "--no-jax", "--devices", "cpu"]


def _check_result(data, out):
    tables = data["tables"]
    assert {"book_step", "tiny_step", "big_step", "protocol", "memory"} <= set(tables)
    rows = tables["book_step"]["rows"]
    expected = set(BOOK_ROWS)
    if not _importable("torch"):
        expected.discard("idiomatic PyTorch cpu")
    if _importable("threadpoolctl"):
        expected |= {"hand-tuned NumPy f32, 1 BLAS thread", "book loop, lean NumPy net, 1 thread"}
    assert expected <= set(rows)
    assert {"xpnet cpu", "xpnet, book-style loop", "xpnet, book-style loop + net.loss",
            "hand-tuned NumPy float32"} <= set(tables["tiny_step"]["rows"])
    assert "matmul floor (products only)" in tables["big_step"]["rows"]
    for name in ("book_step", "tiny_step", "big_step", "protocol"):
        for r in tables[name]["rows"].values():
            assert r["median"] > 0 and r["min"] <= r["median"] <= r["max"]
            for key in ("ratio_to_tuned", "ratio_to_xpnet"):
                assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0
    targets = data["targets"]
    for key in ("book_loop", "book_loop_with_net_loss", "trainer_step"):
        r = targets[key]["ratio_to_tuned"]
        assert math.isfinite(r) and r > 0
    assert targets["book_loop"]["target"] == 1.10
    assert set(targets["book_loop_bounds"]) == {"reused_buffers", "fresh_arrays"}
    for b in targets["book_loop_bounds"].values():
        assert math.isfinite(b["ratio_to_tuned"]) and b["ratio_to_tuned"] > 0
    for name in expected:  # every CPU contender printed, with its ratios
        assert name in out
    assert "targets (book net" in out and "book-style loop" in out and "target <= 1.10x" in out
    assert set(targets["trainer_step"]["reference_us"]) == {"trainer", "yardstick"}
    assert "README" not in out and "this change" not in out  # it speaks to the user, not of its history


def _importable(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


@pytest.mark.slow
def test_quick_benchmark_from_the_checkout(tmp_path):
    out = tmp_path / "b.json"
    p = subprocess.run([sys.executable, "-m", "benchmarks", *QUICK, "--json", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    _check_result(json.loads(out.read_text()), p.stdout)


def test_xpnet_bench_hands_its_options_to_the_benchmark(monkeypatch, tmp_path):
    """``xpnet bench ...`` is ``python -m benchmarks ...``: the benchmark parses the options and runs."""
    got = []
    monkeypatch.setattr(harness, "run_cli", lambda args: got.append(args) or 0)
    argv = [*QUICK, "--json", str(tmp_path / "b.json"), "--busy", "2"]
    assert cli.main(["bench", *argv]) == 0
    assert [vars(a) for a in got] == [vars(benchmarks.parser().parse_args(argv))]


def test_xpnet_bench_help_is_the_benchmark_s(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "-h"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: xpnet bench")
    for action in benchmarks.parser()._actions:
        assert all(option in out for option in action.option_strings), action.option_strings
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--steps", "0"])
    assert e.value.code == 2 and "xpnet bench: error: argument --steps: expected a positive integer, got '0'" \
        in capsys.readouterr().err


@pytest.fixture
def no_checkout(monkeypatch, tmp_path):
    """A Python that cannot import the checkout's ``benchmarks``: the root off sys.path, cwd elsewhere."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != ROOT])
    for name in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_bench_outside_a_checkout_says_how_to_run_it(no_checkout, capsys):
    assert cli._benchmark_package() is None
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("xpnet bench: error: ")
    assert "not the wheel" in err and "python -m benchmarks" in err and "source checkout" in err
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "not here: the benchmark ships with xpnet's source" in " ".join(capsys.readouterr().out.split())


def test_bench_refuses_another_package_named_benchmarks(no_checkout, monkeypatch, capsys):
    (no_checkout / "benchmarks").mkdir()
    (no_checkout / "benchmarks" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(no_checkout))
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "is not xpnet's benchmark" in err and str(no_checkout / "benchmarks") in err


def test_bench_is_found_as_the_checkout_s_package():
    assert Path(cli._benchmark_package().origin) == ROOT / "benchmarks" / "__init__.py"


def test_the_benchmark_and_the_command_line_do_not_import_each_other():
    """``benchmarks/`` owns its options; ``xpnet.cli`` imports it as a package, never by path."""
    for f in (ROOT / "benchmarks").glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n == "xpnet.cli" or n.startswith("xpnet.cli.") for n in names), f.name
    source = (ROOT / "xpnet" / "cli.py").read_text()
    assert "spec_from_file_location" not in source and "__file__" not in source


@pytest.mark.slow  # runs the benchmark
def test_quick_run_in_process():
    res = run(quick=True, steps=5, with_jax=False, protocol=False, devices=["cpu"], log=lambda *a: None)
    rows = res["tables"]["book_step"]["rows"]
    assert rows["xpnet cpu"]["ratio_to_xpnet"] == 1.0
    assert res["tables"]["book_step"]["reference"] in ("hand-tuned NumPy float32",
                                                       "hand-tuned NumPy f32, 1 BLAS thread")
    assert res["machine"]["matmul_gflops_f32"] > 0
    assert step_flops([784, 50, 10], 100) == 2 * (2 * 100 * (784 * 50 + 50 * 10)) + 2 * 100 * 50 * 10


def test_devices_go_by_their_canonical_name_and_an_unusable_one_is_skipped():
    names, skips = harness._usable_devices(["auto", "cpu", "cuda:7"])
    assert names == list(dict.fromkeys([xpnet.device("auto").name, "cpu"]))  # one row per device
    assert set(skips) == {"xpnet cuda:7"} and "cuda:7" in skips["xpnet cuda:7"]
    assert harness._why_missing("xpnet_no_such_module") == "xpnet_no_such_module is not installed"


@pytest.mark.slow  # runs the benchmark
def test_missing_optional_tools_skip_their_contenders_with_a_line(monkeypatch):
    """No torch, JAX or threadpoolctl: the benchmark still runs, one line per contender it leaves out."""
    real = harness._why_missing
    monkeypatch.setattr(harness, "_why_missing",
                        lambda m: f"{m} is not installed" if m in ("torch", "jax", "threadpoolctl") else real(m))
    lines = []
    res = run(quick=True, steps=5, with_jax=True, protocol=False, devices=["cpu", "cuda:7"], log=lines.append,
              only="book")
    rows = res["tables"]["book_step"]["rows"]
    skipped = {"idiomatic PyTorch cpu": "torch", "idiomatic PyTorch cuda": "torch", "PyTorch CUDA graph": "torch",
               "hand-tuned NumPy f32, 1 BLAS thread": "threadpoolctl", "book loop, lean NumPy net, 1 thread":
               "threadpoolctl", "jitted JAX": "jax"}
    for name, tool in skipped.items():
        assert f"skipped: {name} ({tool} is not installed)" in lines and name not in rows
    assert any(line.startswith("skipped: xpnet cuda:7 (") for line in lines)
    assert set(res["skipped"]) >= set(skipped) | {"xpnet cuda:7"}
    assert "xpnet cpu" in rows and "hand-tuned NumPy float32" in rows


def test_contenders_keep_only_the_last_call_s_losses():
    """Memory stays flat over a long benchmark: each ``steps(k)`` replaces the losses it keeps."""
    data = _data(300, 50)
    p = _init_params([784, 20, 10], 0.01, 0)
    cs = [BookContender(p, data, 0.1, 10, 0), XpnetContender(p, data, 0.1, 10, 0)]
    if _importable("torch"):
        from benchmarks.contenders import TorchContender

        cs.append(TorchContender(p, data, 0.1, 10, 0))
    for c in cs:
        c.steps(3)
        c.steps(2)
        losses = c.train_loss_list if isinstance(c, BookContender) else c.losses
        assert len(losses) == 2, c.name


def test_the_wheel_leaves_the_benchmark_out():
    tomllib = pytest.importorskip("tomllib")
    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert find["include"] == ["xpnet*"]  # "benchmarks" is not matched


def _data(n=3000, m=1000):
    (x, t), (xt, tt) = xpnet.load_mnist()
    return (x[:n], t[:n]), (xt[:m], tt[:m])


@pytest.mark.slow  # runs the benchmark
def test_accelerator_table_runs_on_any_device():
    """The GPU table (large MLP against the device's own matmul rate), tried on a CPU device."""
    assert is_accelerator("cuda:0") and is_accelerator("torch:cuda") and not is_accelerator("torch")
    lines = []
    dev = "torch" if _importable("torch") else "cpu"
    res = accelerator_table([dev], [784, 32, 32, 10], 16, _data(200, 50), 10, 1, lines.append, split=1, pause=None,
                            rate_n=256)
    rows = res["rows"]
    assert set(rows) == {f"xpnet {dev}", f"matmul floor on {dev}"}
    for r in rows.values():
        assert math.isfinite(r["fraction_of_rate"]) and r["fraction_of_rate"] > 0 and r["tflops"] > 0
    assert res["matmul_gflops_f32"][dev] > 0 and "of the rate" in "\n".join(lines)


def test_block_drawn_batches_are_the_per_step_batches():
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    blocks = list(draw_batches(a, 60000, 100, 600))
    assert len(blocks) == 600
    for idx in blocks:
        np.testing.assert_array_equal(idx, b.integers(0, 60000, 100))


def test_tuned_reference_takes_the_same_steps_as_the_book_loop():
    """Same maths, float32, same batches: the hand-tuned step and the reader's loop agree."""
    data = _data(600, 100)
    p = _init_params([784, 50, 10], 0.01, 0)
    tuned, loop = TunedNumpyContender(p, data, 0.1, 100, 0), BookLoopContender(p, data, 0.1, 100, 0)
    tuned.steps(20)
    loop.steps(20)
    for i, key in enumerate(("W1", "W2")):
        np.testing.assert_allclose(tuned.Ws[i], loop.net.params[key], rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(tuned.bs_[i], loop.net.params[f"b{i + 1}"], rtol=1e-3, atol=1e-5)
    # the loss each step: the hand-tuned one is the loss of the batch before its update
    second = BookLoopContender(p, data, 0.1, 100, 0, second_loss=True)
    first = BookLoopContender(p, data, 0.1, 100, 0)
    tuned2 = TunedNumpyContender(p, data, 0.1, 100, 0)
    tuned2.steps(1)
    first.steps(1)
    second.steps(1)
    idx = np.random.default_rng(0).integers(0, 600, 100)  # the first batch of seed 0, as both draw it
    x, t = first.x[idx], first.t[idx]
    net0 = new_net(p)
    np.testing.assert_allclose(tuned2.losses[0], float(net0.loss(x, t)), rtol=1e-5)
    assert len(second.train_loss_list) == 1 and np.isfinite(float(second.train_loss_list[0]))


def test_tuned_reference_learns_like_xpnet():
    """The hand-tuned contender is a real implementation of the same step, not a stand-in."""
    data = _data()
    p = _init_params([784, 50, 10], 0.01, 0)
    a, b = XpnetContender(p, data, 0.1, 100, 0), TunedNumpyContender(p, data, 0.1, 100, 0)
    c = TunedNumpyOneThreadContender(p, data, 0.1, 100, 0) if _importable("threadpoolctl") else b
    a.steps(300)
    b.steps(300)
    c.steps(300)
    acc_a, acc_b, acc_c = a.evaluate()[1], b.evaluate()[1], c.evaluate()[1]
    assert acc_a > 0.8 and abs(acc_a - acc_b) < 0.05 and abs(acc_b - acc_c) < 1e-9
    assert np.all(np.isfinite(b.losses)) and b.losses[-1] < b.losses[0]


def test_tuned_reference_handles_deeper_nets():
    data = _data(500, 100)
    p = _init_params([784, 32, 16, 10], "he", 0)
    c = TunedNumpyContender(p, data, 0.1, 50, 0)
    c.steps(50)
    assert np.all(np.isfinite(c.losses)) and c.evaluate()[1] > 0.3


def test_book_loop_contenders_learn():
    data = _data()
    p = _init_params([784, 50, 10], 0.01, 0)
    for second in (False, True):
        c = BookLoopContender(p, data, 0.1, 100, 0, second_loss=second)
        c.steps(300)
        assert len(c.train_loss_list) == 300 and c.evaluate()[1] > 0.8


@pytest.mark.parametrize("net_class", [TunedNumpyNet, LeanNumpyNet])
@pytest.mark.parametrize("sizes", [[784, 50, 10], [20, 12, 8, 10]], ids=["book", "deeper"])
def test_numpy_bound_nets_give_xpnets_gradient_and_loss(sizes, net_class):
    """The bounds' gradient() is the real one: xpnet's float64 gradient and loss on the same batch."""
    p = _init_params(sizes, 0.1, 3)
    rng = np.random.default_rng(1)
    x = rng.random((32, sizes[0])).astype(np.float32)
    t = rng.integers(0, 10, 32)
    bound = net_class(p, 32)
    got = {k: v.copy() for k, v in bound.gradient(x, t).items()}
    net = xpnet.MultiLayerNet(sizes, device="cpu", dtype="float64", params=p)
    want = net.gradient(x.astype(np.float64), t)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(float(bound.lastLayer.loss), float(net.lastLayer.loss), rtol=1e-5)


def test_tuned_net_refuses_another_batch_size():
    p = _init_params([20, 12, 10], 0.1, 3)
    with pytest.raises(ValueError, match="batches of 32"):
        TunedNumpyNet(p, 32).gradient(np.zeros((5, 20), np.float32), np.zeros(5, np.int64))


@pytest.mark.parametrize("lean,one_thread", [(False, False), (True, False), (True, True)],
                         ids=["tuned", "lean", "lean, one thread"])
def test_numpy_net_loops_take_the_book_loops_steps(lean, one_thread):
    if one_thread and not _importable("threadpoolctl"):
        pytest.skip("threadpoolctl is not installed (the train extra)")
    data = _data(600, 100)
    p = _init_params([784, 50, 10], 0.01, 0)
    bound = NumpyNetLoopContender(p, data, 0.1, 100, 0, lean=lean, one_thread=one_thread)
    loop = BookLoopContender(p, data, 0.1, 100, 0)
    bound.steps(20)
    loop.steps(20)
    for k, v in bound.net.params.items():
        np.testing.assert_allclose(v, loop.net.params[k], rtol=1e-3, atol=1e-5, err_msg=k)
    np.testing.assert_allclose([float(v) for v in bound.train_loss_list], [float(v) for v in loop.train_loss_list],
                               rtol=1e-4)
    bound.steps(200)
    assert bound.evaluate()[1] > 0.6


def test_xpnet_contender_starts_from_the_given_weights():
    p = _init_params([12, 6, 10], 0.5, 1)
    net = new_net(p)
    assert isinstance(net, xpnet.TwoLayerNet)
    for k, v in p.items():
        np.testing.assert_allclose(net.device.to_numpy(net.params[k]), v.astype(np.float32))
        assert net.params[k].dtype == np.float32
    # the layers hold the very arrays: the book-style update reaches them
    assert net.layers["Affine1"].W is net.params["W1"]


def test_book_reference_code_agrees_with_xpnet():
    """The book's own code (as the benchmark runs it) and xpnet give the same gradients."""
    p = _init_params([12, 6, 10], 0.5, 1)
    book = book_net_with(p)
    net = xpnet.TwoLayerNet(12, 6, 10, device="cpu", dtype="float64")
    for k, v in p.items():
        net.params[k][...] = v
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
    pytest.importorskip("jax")
    (x, t), (xt, tt) = _data()
    c = JaxContender(_init_params([784, 50, 10], 0.01, 0), ((x, t), (xt, tt)), 0.1, 100, 0)
    c.steps(300)
    assert c.evaluate()[1] > 0.8


@pytest.mark.slow
def test_quick_benchmark_on_the_second_gpu_stays_on_it(tmp_path):
    """On a simulated second GPU (tests/fakecupy): every computation for ``cuda:1`` runs in its
    scope, or CuPy without peer access refuses it; no timings are checked. ``FAKE_CUPY_STRICT=1``
    makes a cross-device operation raise, as real CuPy does without peer access; the report the
    fake dumps at exit counts them all the same."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "tests" / "fakecupy"), FAKE_CUPY_STRICT="1",
               FAKE_CUPY_REPORT=str(tmp_path / "r"))
    env.pop("XPNET_DEVICE", None)
    out = tmp_path / "b.json"
    p = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--steps", "1", "--repeats", "1", "--no-jax",
                        "--no-protocol", "--devices", "cuda:1", "--json", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "xpnet cuda:1" in p.stdout
    tables = json.loads(out.read_text())["tables"]
    for name in ("book_step", "big_step", "accelerator_mlp"):  # one row name in every table
        assert "xpnet cuda:1" in tables[name]["rows"], name
    assert "matmul floor on cuda:1" in tables["accelerator_mlp"]["rows"]
    reports = list(tmp_path.glob("r.*.json"))
    assert reports, "the fake CuPy wrote no report"
    for r in reports:
        stats = json.loads(r.read_text())
        assert stats["cross_device"] == 0, stats["cross_device_where"]


@pytest.mark.slow
def test_busy_cpu_spinners_are_killed_at_the_end():
    with harness.busy_cpu(2, seconds=60) as procs:
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
    assert all(p.poll() is not None for p in procs)


def test_the_conv_tables_contenders_hold_the_same_net():
    """torch.nn's modules and the book's layers start from xpnet's very weights: the same scores."""
    torch = pytest.importorskip("torch")
    from benchmarks.conv import BookConvContender, TorchConvContender, make_net

    x = np.random.default_rng(0).random((6, 1, 28, 28)).astype(np.float32)
    data = ((x, np.arange(6) % 10), (x, np.arange(6) % 10))
    net = make_net("simple", quick=True)
    want = net.predict(x)
    t = TorchConvContender("simple", data, 6, 0, quick=True)
    with torch.no_grad():
        np.testing.assert_allclose(t.model(torch.tensor(x)).numpy(), want, rtol=1e-4, atol=1e-5)
    b = BookConvContender("simple", data, 6, 0, quick=True)
    h = x.astype(np.float64)
    for layer, _ in b.layers:
        h = layer.forward(h)
    np.testing.assert_allclose(h, make_net("simple", dtype="float64", quick=True).predict(x), rtol=1e-10)
    for c in (t, b):
        c.steps(2)  # a step runs
