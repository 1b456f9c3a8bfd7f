import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.throughput import main

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "benchmarks").glob("*.py") if p.name != "__init__.py"))
def test_every_benchmark_runs_as_the_readme_writes_it(script, tmp_path):
    # `python benchmarks/NAME.py` from anywhere, with no PYTHONPATH: the script's folder is on the
    # path then, not the repository root.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--help"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_throughput_smoke():
    results = main(["--smoke-test"])
    seed_batching = results.pop("seed_batching")
    (speeds,) = results.values()
    assert set(speeds) == {"ours", "ours_default_norm", "grouped", "dataloader"}
    assert all(v > 0 for v in speeds.values())
    (stacked,) = seed_batching.values()  # no compiled column on CPU without --compile
    assert set(stacked) == {"dataloader", "eager", "seed_batch_1", "seed_batch_2"} and min(stacked.values()) > 0


def test_throughput_of_every_architecture_smoke():
    from model.architectures import ARCHITECTURES

    results = main(["--smoke-test", "--architectures", "--steps", "1"])
    assert {label.split()[0] for label in results} == set(ARCHITECTURES)
    assert "crocodile (round 1)" in results and "stem" in results and "ple ME" in results
    assert all(speed > 0 for speeds in results.values() for speed in speeds.values())


def test_family_smoke(capsys):
    from benchmarks.family import main as family

    rows = family(["--smoke-test", "--space", "table2_kuairand", "epochs=1", "expert_hidden=8,4", "tower_hidden=4"])
    assert len(rows) == 12 and rows["Crocodile"]["samples_per_s"] > 0
    assert rows["Single Domain"]["auc"] != rows["Single Domain"]["auc"]  # NaN: no overall metric
    assert "Single Domain" in capsys.readouterr().out


def test_sweep_overhead_smoke():
    import ray

    from benchmarks.sweep_overhead import main as overhead

    try:
        results = overhead(["--trials", "1", "--train-trials", "0"])
    finally:
        ray.shutdown()  # later modules start their own clusters
    assert set(results) == {"no Ray", "Tune, in-process trials"}
    assert all(wall >= own > 0 for wall, own, _ in results.values())


def test_convergence_smoke(capsys):
    from benchmarks.convergence import bayes_fraction, main as convergence

    curves = convergence(["--smoke-test"])
    assert set(curves) == {"MMoE", "Crocodile"} and all(len(c) == 2 for c in curves.values())
    finals = [line for line in capsys.readouterr().out.splitlines() if "test AUC" in line]
    assert len(finals) == 2 and all("% of the Bayes gap" in line for line in finals)
    # Each run says whether it ended still improving (best = last allowed epoch) or had converged.
    for line, curve in zip(finals, curves.values()):
        improving = curve.index(max(curve)) == len(curve) - 1
        assert ("still improving at the last epoch" in line) == improving
        assert ("converged: best epoch" in line) == (not improving)
    assert bayes_fraction(0.8, 0.9) == pytest.approx(0.75)


def test_data_reload_smoke():
    from benchmarks.data_reload import main as reload

    results = reload(["--smoke-test"])
    assert len(results) == 3 and all(t > 0 for t in results.values())


def test_diagnostics_cost_smoke():
    from benchmarks.diagnostics_cost import main as cost

    results = cost(["--smoke-test", "--per-domain", "256"])
    assert results["epoch_s"] > 0 and results["call_s"] > 0 and results["num_scalars"] > 40
