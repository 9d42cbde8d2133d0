"""The benchmark on a simulated second GPU (tests/fakecupy): every computation for ``cuda:1``
must run in its scope, or CuPy without peer access refuses it; no timings are checked.

``FAKE_CUPY_STRICT=1`` makes a cross-device operation raise, as real CuPy does without peer
access; the report the fake dumps at exit counts them all the same.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKECUPY = ROOT / "tests" / "fakecupy"


@pytest.mark.slow
def test_quick_benchmark_on_the_second_gpu_stays_on_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(FAKECUPY), FAKE_CUPY_STRICT="1", FAKE_CUPY_REPORT=str(tmp_path / "r"))
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
