"""examples/: the book's scripts as xpnet runs them -- the shopping examples' numbers on two
devices, a short train_neuralnet.py, and the book's own gradient_check.py printing the book's
precision. Each starts a process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
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


@pytest.mark.slow
def test_train_example_short():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "train_neuralnet.py"), "--device", "cpu",
                        "--iters", "700"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "epoch  1: train acc" in r.stdout and "final test accuracy" in r.stdout


@pytest.mark.slow
def test_the_books_gradient_check_script_prints_the_books_precision():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "book_gradient_check.py")], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "XPNET_DEVICE": "cpu"})
    assert r.returncode == 0, r.stderr
    diffs = dict(line.split(":") for line in r.stdout.split())
    assert set(diffs) == {"W1", "b1", "W2", "b2"}
    assert all(float(v) < 1e-9 for v in diffs.values()), r.stdout
