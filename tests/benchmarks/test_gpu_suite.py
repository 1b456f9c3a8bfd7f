import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_suite_smoke_test_runs_on_cpu_and_writes_its_json(tmp_path):
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--smoke-test"], cwd=REPO,
                          env={**os.environ, "OUT": str(tmp_path)}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"throughput", "pytest_gpu", "table5_sweep"}
    stacked = summary["throughput"]["samples_per_s"]["seed_batching"]["1024"]
    assert {"dataloader", "eager", "seed_batch_1", "seed_batch_2"} <= set(stacked)
    assert summary["pytest_gpu"]["exit_code"] == 0 and summary["pytest_gpu"]["skipped"] > 0  # no CUDA here
    assert summary["table5_sweep"] | {"wall_s": 0} == {"exit_code": 0, "wall_s": 0, "rows": 12, "rows_ok": 12,
                                                       "variants": 6}


def test_gpu_suite_refuses_a_machine_without_cuda_unless_smoke(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the suite runs for real there")
    proc = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_suite.sh")], cwd=REPO,
                          env={**os.environ, "OUT": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no CUDA GPU here; run with --smoke-test" in proc.stderr
