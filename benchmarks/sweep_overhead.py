"""Ray's overhead per trial: in-process Tune trials and Ray Train trials vs plain `run_job` calls.

Overhead per trial = (wall time of the sweep - the trials' own training wall time) / trials,
with the same jobs run first without Ray in this process as the baseline.

    python benchmarks/sweep_overhead.py [--data synthetic:tiny] [--trials 6] [--train-trials 1] [key=value ...]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

from model.train import SMOKE_OVERRIDES
from sweeper import run
from sweeper.trial import Job, cached_data, run_job


def sweep_seconds(tmp: Path, name: str, workers: int, seeds: list[int], data: str, overrides: list[str]) -> tuple[float, float]:
    """(sweep wall time, sum of the trials' own wall times) for one variant x seeds."""
    space = tmp / f"{name}.yaml"
    space.write_text(yaml.safe_dump({
        "study": "replicate", "seeds": seeds, "variants": [{"name": "Crocodile", "set": {"gating": "peg"}}],
        "resources": {"workers": workers, "cpus_per_worker": 1 if workers == 0 else 0.5}}))
    start = time.perf_counter()
    code = run.main(["--space", str(space), "--storage", str(tmp), "--name", name, "--data", data, "--wandb", "off",
                     "--no-report", *overrides])
    wall = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"sweep {name} failed with exit code {code}")
    rows = pd.read_parquet(tmp / name / "results")
    return wall, float(rows["wall_time_s"].sum())


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--data", default="synthetic:tiny")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--train-trials", type=int, default=1, help="Ray Train trials (each ~25-55 s setup on 2 cores)")
    args = parser.parse_args(argv)
    overrides = args.overrides or [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                                   for k, v in SMOKE_OVERRIDES.items()]
    base = dict(o.split("=", 1) for o in overrides)
    results = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cached_data(args.data)
        start = time.perf_counter()
        for seed in range(args.trials):
            run_job(Job(sweep="plain", study="replicate", variant="Crocodile", factors={"gating": "peg"}, base=base,
                        seeds=(seed,), data=args.data, sweep_uri=str(tmp / "plain")))
        plain = time.perf_counter() - start
        own = float(pd.read_parquet(tmp / "plain" / "results")["wall_time_s"].sum())
        results["no Ray"] = (plain, own, args.trials)
        wall, own = sweep_seconds(tmp, "inproc", 0, list(range(args.trials)), args.data, overrides)
        results["Tune, in-process trials"] = (wall, own, args.trials)
        if args.train_trials:
            wall, own = sweep_seconds(tmp, "train", 1, list(range(args.train_trials)), args.data, overrides)
            results["Tune + Ray Train trials"] = (wall, own, args.train_trials)
    print(f"\n{'path':<26} {'trials':>6} {'wall s':>8} {'training s':>10} {'overhead s/trial':>17} {'overhead %':>10}")
    for path, (wall, own, n) in results.items():
        print(f"{path:<26} {n:>6} {wall:>8.1f} {own:>10.1f} {(wall - own) / n:>17.2f} {100 * (wall - own) / wall:>9.0f}%")
    return results


if __name__ == "__main__":
    main()
