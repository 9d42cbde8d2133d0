import json
import subprocess
import sys
from pathlib import Path

import pytest

from xpnet.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_train_writes_history_checkpoint_and_plot(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--device", "cpu", "--iters", "700", "--out", str(out), "--quiet", "--seed", "1"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "epoch   1 (iter    600)" in text and "final test accuracy" in text and "wall time" in text
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["loss"]) == 700 and len(hist["test_acc"]) == 2 and hist["final_test_acc"] > 0.85
    assert (out / "model.npz").is_file()
    assert str(out / "history.json") in text
    pytest.importorskip("matplotlib")
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_train_deeper_net_with_adam(tmp_path, capsys):
    rc = main(["train", "--device", "cpu", "--sizes", "784,32,32,10", "--optimizer", "adam", "--lr", "0.002",
               "--weight-init", "he", "--iters", "200", "--out", str(tmp_path), "--quiet", "--no-plot"])
    assert rc == 0 and "plot: skipped" in capsys.readouterr().out


@pytest.mark.parametrize("args,msg", [
    (["--lr", "-1"], "expected a positive"),
    (["--iters", "zero"], "expected a positive integer"),
    (["--device", "tpu"], "unknown device"),
    (["--optimizer", "rmsprop"], "invalid choice"),
    (["--sizes", "784"], "at least two"),
    (["--seed", "-1"], "non-negative integer"),
])
def test_bad_options_give_a_message_not_a_traceback(args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", *args])
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_sizes_must_fit_mnist(tmp_path, capsys):
    assert main(["train", "--sizes", "100,10", "--out", str(tmp_path), "--device", "cpu"]) == 2
    assert "--sizes must start with 784" in capsys.readouterr().err


def test_missing_data_dir(tmp_path, capsys):
    assert main(["train", "--device", "cpu", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "missing" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_divergence_is_a_message(tmp_path, capsys):
    rc = main(["train", "--device", "cpu", "--lr", "1e10", "--weight-init", "1", "--iters", "300",
               "--out", str(tmp_path), "--quiet"])
    assert rc == 2 and "smaller learning rate" in capsys.readouterr().err


def test_devices(capsys):
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "cpu" in out and "array_api_strict" in out and "cuda" in out


def test_module_entry_point_and_gradcheck():
    r = subprocess.run([sys.executable, "-m", "xpnet", "gradcheck", "--device", "cpu"], capture_output=True,
                       text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "W1: max abs diff" in r.stdout and "PASSED" in r.stdout


@pytest.mark.parametrize("script,expect", [
    ("buy_apple.py", ["price: 220.0", "dApple: 2.2", "dApple_num: 110.0", "dTax: 200.0"]),
    ("buy_apple_orange.py", ["price: 715.0", "dApple_num: 110.0", "dApple: 2.2", "dOrange: 3.3",
                             "dOrange_num: 165.0", "dTax: 650.0"]),
])
@pytest.mark.parametrize("device", ["cpu", "array_api_strict"])
def test_shopping_examples(script, expect, device):
    r = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--device", device],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    for line in expect:
        assert line in r.stdout.splitlines()


def test_train_example_short():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "train_neuralnet.py"), "--device", "cpu",
                        "--iters", "700"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "epoch  1: train acc" in r.stdout and "final test accuracy" in r.stdout
