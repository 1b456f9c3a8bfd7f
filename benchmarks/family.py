"""The methods of a space file trained one after another in this process: test AUC/gAUC and
training samples/s per method, mean over seeds. A quick look at Table 2 without Ray.

    python benchmarks/family.py [--space table2_kuairand] [--data synthetic:small] [--seeds 0,1]
                                [key=value ...] [--smoke-test]

Rows whose architecture has no overall metric (single_domain) show "-" there, as in the paper.
"""
from __future__ import annotations

import argparse
import math
import statistics

from model.architectures import ARCHITECTURES
from model.config import RunConfig
from model.datasets import check_spec, load_data
from model.train import SMOKE_OVERRIDES, pick_device, train
from sweeper.space import load_space


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(prog="python benchmarks/family.py", description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config keys applied to every row")
    parser.add_argument("--space", default="table2_kuairand", help="space file whose variants are the rows")
    parser.add_argument("--data", default="synthetic:small")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, one seed, one epoch, small models")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.overrides)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.smoke_test:
        args.data, seeds, overrides = "synthetic:tiny", seeds[:1], {**SMOKE_OVERRIDES, **overrides}
    space = load_space(args.space)
    configs = {v.name: RunConfig().with_overrides({**space.base, **v.factors, **overrides}) for v in space.variants}
    check_spec(args.data)
    data = load_data(args.data)
    device = pick_device(args.device)
    print(f"data {data.name}, seeds {seeds}, device {device}, overrides {overrides}", flush=True)
    print(f"{'method':<14} {'seed':>4} {'AUC':>8} {'gAUC':>8} {'samples/s':>10} {'epochs':>6}", flush=True)
    rows = {}
    for name, config in configs.items():
        overall = ARCHITECTURES[config.model.architecture].overall
        runs = []
        for seed in seeds:
            result = train(config.with_overrides({"seed": seed}), data, device=device)
            runs.append(result)
            auc, gauc = (result.metrics[f"test_{m}_overall"] for m in ("auc", "gauc"))
            print(f"{name:<14} {seed:>4} {_cell(auc, overall)} {_cell(gauc, overall)} "
                  f"{result.samples_per_s:>10,.0f} {result.epochs_run:>6}", flush=True)
        rows[name] = {m: statistics.mean(r.metrics[f"test_{m}_overall"] for r in runs) if overall else math.nan
                      for m in ("auc", "gauc")}
        rows[name]["samples_per_s"] = statistics.mean(r.samples_per_s for r in runs)
    print(f"\nmean over seeds {seeds} (test split, overall):")
    print(f"{'method':<14} {'AUC':>8} {'gAUC':>8} {'samples/s':>10}")
    for name, row in rows.items():
        overall = not math.isnan(row["auc"])
        print(f"{name:<14} {_cell(row['auc'], overall)} {_cell(row['gauc'], overall)} {row['samples_per_s']:>10,.0f}")
    return rows


def _cell(value: float, overall: bool) -> str:
    return f"{value:>8.4f}" if overall else f"{'-':>8}"


if __name__ == "__main__":
    main()
