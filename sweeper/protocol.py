"""The significance protocol over one table: families, Holm within each family, gatekeeping.

Every cell (declared comparison x metric x domain) belongs to one family, fixed by the space file
before any result exists:
- primary: the declared hypotheses (sweeper.hypotheses). A single hypothesis is one member per
  metric; an intersection-union hypothesis is one member whose p is the largest of its pairwise
  one-sided p-values. Holm across the members.
- ablation: every other declared comparison on the overall domain, per metric. Holm within.
- secondary: the per-domain cells of every declared comparison. Gatekept: tested only for a variant
  whose primary hypotheses all came out `better`; otherwise they get a 95 % CI and no test.
  Holm within the cells tested.
Tests: two-sided at 0.05 with a direction check (better / worse) everywhere, except the pairwise
tests inside an intersection-union hypothesis, which are one-sided at 0.05 in the claimed
direction (an IU can only show `better`). p_adjusted is adjusted within the cell's family only.
MDE at the alpha actually used: Holm's first step, 0.05 / family size, with the cell's sidedness.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from typing import Sequence

import numpy as np
import pandas as pd

from sweeper import hypotheses as hyp
from sweeper import stats, verdicts
from sweeper.stats import ComparisonSpec

PRIMARY, ABLATION, SECONDARY = "primary", "ablation", "secondary"
FAMILIES = (PRIMARY, ABLATION, SECONDARY)
CI_ONLY = "CI only"

STATS_COLUMNS = (
    "table", "variant", "reference", "metric", "domain", "split", "family", "family_size", "hypothesis",
    "n", "variant_n", "ref_n", "expected_n", "dropped_seeds", "mean", "ref_mean", "std", "ref_std", "delta",
    "lift_pts", "lift_rel_pct", "ci_low", "ci_high", "test", "alternative", "p_value", "p_adjusted", "mde_alpha",
    "mde", "pair_corr", "sd_diff", "p_permutation", "p_permutation_floor", "effect_size", "verdict", "significant",
)


def comparison_pairs(comparisons: Sequence[ComparisonSpec],
                     declared: Sequence[hyp.Hypothesis]) -> list[ComparisonSpec]:
    """The declared comparisons, then those only the hypotheses name, each once, in order."""
    pairs = list(dict.fromkeys((c.variant, c.reference) for c in comparisons))
    for hypothesis in declared:
        pairs += [(v, r) for v, r, _, _ in hyp.cells(hypothesis) if (v, r) not in pairs]
    return [ComparisonSpec(v, r) for v, r in dict.fromkeys(pairs)]


def stats_frame(runs: pd.DataFrame, comparisons: Sequence[ComparisonSpec], metrics: Sequence[str],
                domains: Sequence[str], table: str, expected_n: int,
                declared: Sequence[hyp.Hypothesis] = (), seed_test: str = "paired",
                split: str = "test") -> pd.DataFrame:
    """The long stats table: one row per comparison x metric x domain, with its family and verdict.

    `runs` has one row per (variant, seed) (see stats.latest_ok_runs); domains include "overall".
    `declared` hypotheses must have their references resolved (no "all").
    """
    units = hyp.units(declared)
    unit_of = {cell: unit for unit in units for cell in unit.cells}
    cells = [(c.variant, c.reference, m, d) for c in comparison_pairs(comparisons, declared)
             for m in metrics for d in domains]
    cells += [cell for cell in unit_of if cell not in set(cells)]  # a hypothesis on an undeclared domain

    rows, results = [], []
    for cell in cells:
        variant, reference, metric, domain = cell
        unit = unit_of.get(cell)
        one_sided = unit is not None and unit.hypothesis.test == hyp.INTERSECTION_UNION
        column = stats.metric_column(split, metric, domain)
        result = stats.compare(stats.seed_scores(runs, variant, column), stats.seed_scores(runs, reference, column),
                               seed_test=seed_test, alternative=stats.improvement(metric) if one_sided else "two-sided")
        family = PRIMARY if unit is not None else ABLATION if domain == "overall" else SECONDARY
        results.append(result)
        row = asdict(result)
        row["dropped_seeds"] = row["dropped_seeds"].replace("no variant result", f"no {variant} result").replace(
            "no reference result", f"no {reference} result")
        rows.append(dict(table=table, variant=variant, reference=reference, metric=metric, domain=domain,
                         split=split, family=family, hypothesis=unit.name if unit else "", expected_n=expected_n,
                         **row))
    frame = pd.DataFrame(rows, columns=[c for c in STATS_COLUMNS if c not in
                                        ("family_size", "p_adjusted", "mde_alpha", "mde", "verdict", "significant")])
    frame["family_size"] = 0
    frame["p_adjusted"] = math.nan
    frame["verdict"] = verdicts.NOT_TESTABLE

    passed = _primary(frame, units)
    _ablation(frame)
    _secondary(frame, passed)
    # MDE only where a test ran, at the level its family's smallest p must beat.
    alphas = [stats.holm_first_alpha(size) if math.isfinite(p) and size else math.nan
              for size, p in zip(frame["family_size"], frame["p_value"])]
    frame["mde_alpha"] = alphas
    frame["mde"] = [stats.mde(r, a) if math.isfinite(a) else math.nan for r, a in zip(results, alphas)]
    frame["significant"] = (frame["verdict"] == verdicts.BETTER).astype(bool)
    return frame[list(STATS_COLUMNS)].reset_index(drop=True)


def _primary(frame: pd.DataFrame, units: Sequence[hyp.Unit]) -> dict[str, bool]:
    """Holm across the primary members; returns, per variant, whether all its members came out better."""
    rows = {unit.name: frame.index[frame["hypothesis"] == unit.name] for unit in units}
    unit_p = np.array([_unit_p(frame.loc[rows[u.name]], u) for u in units], float)
    adjusted = stats.holm(unit_p)
    size = int(np.isfinite(unit_p).sum())
    passed: dict[str, bool] = {}
    for unit, p_adjusted in zip(units, adjusted):
        index = rows[unit.name]
        cells = frame.loc[index]
        if unit.hypothesis.test == hyp.INTERSECTION_UNION:
            verdict = verdicts.decide_intersection_union(p_adjusted)
        else:
            row = cells.iloc[0]
            verdict = verdicts.decide(p_adjusted, row["delta"], row["metric"], row["test"])
        frame.loc[index, "p_adjusted"] = p_adjusted
        frame.loc[index, "verdict"] = verdict
        frame.loc[index, "family_size"] = size
        variant = unit.hypothesis.variant
        passed[variant] = passed.get(variant, True) and verdict == verdicts.BETTER
    return passed


def _unit_p(cells: pd.DataFrame, unit: hyp.Unit) -> float:
    # An intersection-union member stands or falls with its weakest pairwise test: p = the largest.
    p = cells["p_value"].to_numpy(float)
    return float(np.max(p)) if len(p) and np.isfinite(p).all() else math.nan


def _ablation(frame: pd.DataFrame) -> None:
    _holm_and_decide(frame, frame.index[frame["family"] == ABLATION], ABLATION)


def _secondary(frame: pd.DataFrame, passed: dict[str, bool]) -> None:
    index = frame.index[frame["family"] == SECONDARY]
    gated = []
    for i in index:
        variant, test = frame.at[i, "variant"], frame.at[i, "test"]
        if passed.get(variant, False):
            gated.append(i)
            continue
        if stats.is_testable(test):  # a degenerate cell keeps its reason; a closed gate is said as such
            why = (f"primary hypotheses of {variant} not all better" if variant in passed
                   else f"no primary hypothesis for {variant}")
            frame.at[i, "test"] = f"{CI_ONLY} ({why}; {test} would be used)"
            frame.at[i, "verdict"] = CI_ONLY
        for column in ("p_value", "p_permutation", "p_permutation_floor"):
            frame.at[i, column] = math.nan
    _holm_and_decide(frame, pd.Index(gated, dtype=int), SECONDARY)


def _holm_and_decide(frame: pd.DataFrame, index: pd.Index, family: str) -> None:
    p = frame.loc[index, "p_value"].to_numpy(float)
    adjusted = stats.holm(p)
    frame.loc[index, "p_adjusted"] = adjusted
    frame.loc[frame["family"] == family, "family_size"] = int(np.isfinite(p).sum())
    frame.loc[index, "verdict"] = [verdicts.decide(pa, d, m, t) for pa, d, m, t in
                                   zip(adjusted, frame.loc[index, "delta"], frame.loc[index, "metric"],
                                       frame.loc[index, "test"])]
