"""`python -m sweeper.power SWEEP_DIR --lift 0.001`: the seeds each primary hypothesis needs.

From a pilot sweep, per primary cell: each arm's seed-SD, their per-seed correlation (what pairing
by seed buys) and so the SD of one seed's difference; then the fewest seeds for which the
protocol's own test (paired t, two-sided at Holm's first step for the primary family; one-sided
inside an intersection-union hypothesis) has 80 % power for a true lift of --lift (metric units,
0.001 = 0.1 pts). A pilot of a few seeds estimates the SD roughly: treat the answer as a size, not
a promise.
`--simulate` prints the power table of the README: Table 5-shaped sweeps simulated through the
protocol's vectorised functions (stats.paired_t_many, stats.holm_many, verdicts.decide_many).
`--smoke-test` runs both on a built-in pilot in a few seconds.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from sweeper import hypotheses as hyp
from sweeper import protocol, stats, verdicts

SEEDS_COLUMNS = ("hypothesis", "variant", "reference", "metric", "domain", "n", "std", "ref_std", "pair_corr",
                 "sd_diff", "alpha", "alternative", "seeds_needed", "seeds_if_unpaired")


# ---------------------------------------------------------------- seeds needed, from a pilot


def seeds_table(frame: pd.DataFrame, lift: float, power: float = stats.POWER,
                seed_test: str = "paired") -> pd.DataFrame:
    """Per primary cell of a stats frame (sweeper.protocol): seeds needed for `power` at a true |lift|.

    The level is Holm's first step for the declared primary family (every member counted, testable
    or not: a plan assumes they all will be). seeds_if_unpaired: the same with the arms' correlation
    set to 0, i.e. what pairing saves.
    """
    primary = frame[frame["family"] == protocol.PRIMARY]
    alpha = stats.holm_first_alpha(primary["hypothesis"].nunique())
    test = stats.SEED_TESTS[seed_test]
    rows = []
    for _, cell in primary.iterrows():
        unpaired = math.hypot(cell["std"], cell["ref_std"])  # SD of a difference of independent runs
        rows.append({**{c: cell[c] for c in ("hypothesis", "variant", "reference", "metric", "domain", "n", "std",
                                             "ref_std", "pair_corr", "sd_diff")},
                     "alpha": alpha, "alternative": cell["alternative"],
                     "seeds_needed": stats.seeds_needed(lift, cell["sd_diff"], alpha, cell["alternative"], test, power),
                     "seeds_if_unpaired": stats.seeds_needed(lift, unpaired, alpha, cell["alternative"], test, power)})
    return pd.DataFrame(rows, columns=list(SEEDS_COLUMNS))


def sweep_seeds_table(sweep_dir: Path, lift: float, power: float = stats.POWER) -> pd.DataFrame:
    from sweeper import report  # the report's loaders; imported here so that simulations need none of it

    spec = report.load_spec(sweep_dir)
    if not spec.hypotheses:
        raise ValueError(f"{sweep_dir}/sweep.json declares no hypotheses; seeds are sized per primary hypothesis")
    runs = stats.latest_ok_runs(report.load_results(sweep_dir), seeds=spec.seeds)
    # Only the overall domain: a hypothesis on another domain brings its own cells along.
    frame = protocol.stats_frame(runs, spec.comparisons, spec.metrics, ("overall",), table=spec.table,
                                 expected_n=len(spec.seeds), declared=spec.hypotheses, seed_test=spec.seed_test)
    return seeds_table(frame, lift, power, spec.seed_test)


def format_seeds(table: pd.DataFrame, lift: float, power: float) -> str:
    def count(value: float) -> str:
        return "n/a" if not (math.isfinite(value) or value == math.inf) else (
            f">{stats.MAX_SEEDS}" if value == math.inf else str(int(value)))

    lines = [f"Seeds needed for {100 * power:.0f} % power at a true lift of {lift:g} ({100 * lift:.2f} pts), "
             f"per primary hypothesis:"]
    for r in table.itertuples(index=False):
        sided = "two-sided" if r.alternative == "two-sided" else "one-sided"
        lines.append(f"  {r.hypothesis}: {r.variant} vs {r.reference}, {r.domain} {r.metric}: {count(r.seeds_needed)} "
                     f"seeds ({sided} at alpha {r.alpha:.3g}; pilot n = {r.n}, seed-SD {r.std:.2g} / {r.ref_std:.2g}, "
                     f"pair corr {r.pair_corr:.2f}, SD of a seed's difference {r.sd_diff:.2g}; "
                     f"unpaired: {count(r.seeds_if_unpaired)})")
    return "\n".join(lines)


# ---------------------------------------------------------------- simulation of the protocol


@dataclass(frozen=True)
class Simulated:
    """Rates over simulated Table 5-shaped sweeps (primary: Crocodile vs MMoE on AUC and gAUC, overall)."""

    n: int
    lift_sd: float
    rho: float
    reps: int
    better: float  # fraction of tables whose primary AUC verdict is `better`
    false_verdict: float  # fraction of tables with a `better` or `worse` primary verdict where the truth is null
    ablation_false_verdict: float  # the same for the ablation family (the other rows, which equal MMoE)


def simulate_table5(rng: np.random.Generator, reps: int, n: int, lift_sd: float, rho: float = 0.0,
                    metric_corr: float = 0.8, sd: float = 1e-3) -> dict[str, np.ndarray]:
    """Primary and ablation verdicts of `reps` simulated Table 5 sweeps, through the protocol's own functions.

    Six variants; MMoE (row 0) is the reference; Crocodile (row 5) is `lift_sd` seed-SDs better on AUC
    and gAUC, the other four equal MMoE. A run's score = base + sqrt(rho) * seed effect (shared by all
    variants: what pairing removes) + sqrt(1 - rho) * run noise (correlated metric_corr between AUC
    and gAUC of one run), each with SD `sd`. rho = 0 is the state measured before per-module
    initialisation: pairing bought nothing (-0.10).
    """
    variants, metrics = 6, 2
    mix = np.linalg.cholesky(np.array([[1.0, metric_corr], [metric_corr, 1.0]]))
    seed_effect = rng.standard_normal((reps, 1, n, metrics)) @ mix.T  # (R, 1, n, M)
    noise = rng.standard_normal((reps, variants, n, metrics)) @ mix.T  # (R, V, n, M)
    scores = 0.78 + sd * (math.sqrt(rho) * seed_effect + math.sqrt(1 - rho) * noise)
    scores[:, -1] += lift_sd * sd
    diff = np.moveaxis(scores[:, 1:] - scores[:, :1], 2, -1)  # (R, V-1, M, n): each variant vs MMoE
    _, p = stats.paired_t_many(diff)  # (R, V-1, M)
    delta = diff.mean(axis=-1)
    primary_p = stats.holm_many(p[:, -1])  # (R, M): Crocodile's two members
    ablation_p = stats.holm_many(p[:, :-1].reshape(reps, -1))  # (R, (V-2) * M)
    return {"primary": verdicts.decide_many(primary_p, delta[:, -1]),
            "ablation": verdicts.decide_many(ablation_p, delta[:, :-1].reshape(reps, -1)),
            "scores": scores}


def simulate(n: int, lift_sd: float, rho: float = 0.0, reps: int = 20_000, seed: int = 0) -> Simulated:
    run = simulate_table5(np.random.default_rng(seed), reps, n, lift_sd, rho)
    called = np.isin(run["primary"], (verdicts.BETTER, verdicts.WORSE)).any(axis=1)
    ablation_called = np.isin(run["ablation"], (verdicts.BETTER, verdicts.WORSE)).any(axis=1)
    return Simulated(n=n, lift_sd=lift_sd, rho=rho, reps=reps,
                     better=float(np.mean(run["primary"][:, 0] == verdicts.BETTER)),
                     false_verdict=float(np.mean(called)) if lift_sd == 0 else math.nan,
                     ablation_false_verdict=float(np.mean(ablation_called)))


def power_table(ns: Sequence[int] = (6, 10), lifts: Sequence[float] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
                rhos: Sequence[float] = (0.0, 0.5), reps: int = 20_000) -> pd.DataFrame:
    """P(primary AUC verdict `better`) by lift (seed-SDs), seeds and pairing correlation."""
    rows = []
    for rho in rhos:
        for n in ns:
            row = {"pair corr": rho, "seeds": n}
            for lift in lifts:
                row[f"{lift:g} SD"] = simulate(n, lift, rho, reps).better
            rows.append(row)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- CLI


def smoke_pilot() -> tuple[pd.DataFrame, tuple[hyp.Hypothesis, ...]]:
    """A Table 5-shaped pilot of 3 seeds from the simulation, as a results frame."""
    run = simulate_table5(np.random.default_rng(1), 1, 3, lift_sd=2.0, rho=0.5)
    names = ["MMoE", "ME-MMoE", "ME-MMoE-PG", "ME-MMoE-PG+Cov", "ME-MMoE-PEG", "Crocodile"]
    rows = [{"variant": name, "seed": seed, "test_auc_overall": run["scores"][0, v, seed, 0],
             "test_gauc_overall": run["scores"][0, v, seed, 1]}
            for v, name in enumerate(names) for seed in range(3)]
    return pd.DataFrame(rows), (hyp.Hypothesis("Crocodile", ("MMoE",), ("auc", "gauc")),)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeper.power", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, nargs="?", help="a pilot sweep (sweep.json and results/)")
    parser.add_argument("--lift", type=float, default=0.001, help="true lift to detect, metric units (default 0.001)")
    parser.add_argument("--power", type=float, default=stats.POWER, help="target power (default 0.8)")
    parser.add_argument("--simulate", action="store_true", help="print the protocol's simulated power table")
    parser.add_argument("--reps", type=int, default=20_000, help="simulated sweeps per cell of --simulate")
    parser.add_argument("--smoke-test", action="store_true", help="both, on a built-in pilot, in seconds")
    args = parser.parse_args(argv)
    if not args.lift > 0:
        print(f"error: --lift must be > 0 (metric units, 0.001 = 0.1 pts), but got --lift={args.lift}", file=sys.stderr)
        return 2
    if not 0 < args.power < 1:
        print(f"error: --power must be in (0, 1), but got --power={args.power}", file=sys.stderr)
        return 2
    if args.reps < 100:
        print(f"error: --reps must be >= 100, but got --reps={args.reps}", file=sys.stderr)
        return 2
    if args.smoke_test:
        runs, declared = smoke_pilot()
        frame = protocol.stats_frame(runs, [stats.ComparisonSpec("Crocodile", "MMoE")], ["auc", "gauc"], ["overall"],
                                     table="smoke", expected_n=3, declared=declared)
        print(format_seeds(seeds_table(frame, args.lift, args.power), args.lift, args.power))
        print(power_table(ns=(6,), lifts=(0.0, 2.0), rhos=(0.0,), reps=2_000).to_string(index=False))
        return 0
    if args.simulate:
        print(f"P(primary verdict `better`) in {args.reps} simulated Table 5 sweeps, by true lift in seed-SDs:")
        print(power_table(reps=args.reps).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        return 0
    if args.sweep_dir is None:
        parser.error("give SWEEP_DIR (a pilot sweep), or --simulate, or --smoke-test")
    try:
        table = sweep_seeds_table(args.sweep_dir, args.lift, args.power)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_seeds(table, args.lift, args.power))
    return 0


if __name__ == "__main__":
    sys.exit(main())
