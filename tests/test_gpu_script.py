"""ci/gpu_checks.py runs only where a GPU is lent, rarely: its checks are tried here on the CPU,
so that an API change breaks them in CI rather than on the GPU machine."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "ci" / "gpu_checks.py"


def _run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_gpu_checks_run_on_the_cpu(tmp_path):
    out = tmp_path / "checks.json"
    r = _run("--device", "cpu", "--checks", "protocol,steady", "--iters", "1200", "--json", str(out))
    res = json.loads(out.read_text())
    assert set(res) == {"protocol", "steady"}
    # 1200 steps stay below the protocol's 0.965: the check must say so, and fail the run
    assert res["protocol"]["ok"] is False and "test accuracy" in res["protocol"]["why"]
    assert res["protocol"]["predictions_differing"] == 0  # the checkpoint predicts the same on the CPU
    assert res["steady"]["ok"] is True and len(res["steady"]["memory_bytes_every_1000_steps"]) == 3
    assert r.returncode == 1 and "protocol: FAILED" in r.stdout and "steady: ok" in r.stdout


def test_gpu_checks_name_what_is_wrong(tmp_path):
    r = _run("--device", "cpu", "--checks", "protocol,bogus")
    assert r.returncode == 2 and "unknown checks bogus" in r.stderr
    out = tmp_path / "one.json"
    r = _run("--device", "cpu", "--checks", "one_process", "--json", str(out))  # no launcher: says which
    res = json.loads(out.read_text())["one_process"]
    assert r.returncode == 1 and res["ok"] is False and "mpiexec" in res["why"]
