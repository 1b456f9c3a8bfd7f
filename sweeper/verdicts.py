"""Verdicts: the answer to "does X beat Y here, and can I defend it?", one per primary hypothesis.

A verdict is one of
  better        the family-adjusted test passed and the difference is an improvement;
  worse         it passed and the difference goes the other way (two-sided tests only);
  not shown     it did not pass: the line says what this sweep could have detected, and how many
                seeds the observed (and the paper's published) lift would need for 80 % power;
  not testable  the cell is degenerate (the reason comes from sweeper.stats), so no test ran.
Pure functions over the stats frame (sweeper.protocol); the report writes them to verdicts.csv and
as the first lines of the terminal, report.md and report.html. On synthetic data the lines also
state how close each variant came to the Bayes-optimal AUC. A table whose best variant closed less
than 90 % of the gap from 0.5 is flagged, for one of two reasons, told apart by the runs' epochs:
  undertrained  most runs of some variant were still improving when the epoch budget ended (their
                best epoch was the last one allowed), so more epochs would change the numbers;
  data-limited  every variant converged (most runs peaked before the budget ended or stopped
                early), so more epochs will not close the gap: no model learns the truth from this
                much data at this budget, and the comparison is of converged models on it.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sweeper import hypotheses as hyp
from sweeper import stats
from sweeper.tables import PUBLISHED_NAMES, REFERENCE_DATASET, metric_label

BETTER, WORSE, NOT_SHOWN, NOT_TESTABLE = "better", "worse", "not shown", "not testable"
VERDICTS = (BETTER, WORSE, NOT_SHOWN, NOT_TESTABLE)
VERDICT_COLUMNS = ("variant", "reference", "metric", "domain", "delta", "ci_low", "ci_high", "test", "n",
                   "p_adjusted", "verdict")
EXTRA_COLUMNS = ("hypothesis", "family_size", "lift_pts", "mde", "mde_alpha", "seeds_needed", "published_lift",
                 "seeds_for_published", "dropped_seeds", "undertrained", "data_limited", "line")
UNDERTRAINED_BELOW = 0.9  # fraction of the Bayes gap the best variant must close
UNDERTRAINED = "undertrained: conclusions unreliable"
DATA_LIMITED = "data-limited: converged short of the truth"
TRAINED = "trained close enough to the truth to compare"


# ---------------------------------------------------------------- decisions


def decide(p_adjusted: float, delta: float, metric: str, test: str) -> str:
    """Two-sided test plus a direction check: better / worse / not shown; not testable without a p."""
    if not stats.is_testable(test) or not math.isfinite(p_adjusted):
        return NOT_TESTABLE
    if p_adjusted >= stats.ALPHA:
        return NOT_SHOWN
    improved = delta > 0 if stats.higher_is_better(metric) else delta < 0
    return BETTER if improved else WORSE


def decide_intersection_union(p_adjusted: float) -> str:
    """p is the largest one-sided p of the pairwise tests (already in the claimed direction)."""
    if not math.isfinite(p_adjusted):
        return NOT_TESTABLE
    return BETTER if p_adjusted < stats.ALPHA else NOT_SHOWN


def decide_many(p_adjusted: np.ndarray, delta: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """decide() over arrays of equal shape (for simulations); NaN p is not testable."""
    improved = delta > 0 if higher_is_better else delta < 0
    out = np.where(improved, BETTER, WORSE).astype(object)
    out = np.where(p_adjusted < stats.ALPHA, out, NOT_SHOWN)
    return np.where(np.isfinite(p_adjusted), out, NOT_TESTABLE)


# ---------------------------------------------------------------- one row per primary hypothesis


def verdict_frame(frame: pd.DataFrame, declared: Sequence[hyp.Hypothesis],
                  published_lift: Mapping[hyp.Cell, float] | None = None, training: str = TRAINED,
                  published_source: str = "") -> pd.DataFrame:
    """verdicts.csv: one row per member of the primary family, with its sentence in `line`."""
    published_lift = published_lift or {}
    rows = []
    for unit in hyp.units(declared):
        cells = frame[frame["hypothesis"] == unit.name]
        if cells.empty:
            continue
        if unit.hypothesis.test == hyp.INTERSECTION_UNION:
            row = _intersection_union_row(unit, cells, published_lift)
        else:
            row = _single_row(unit, cells.iloc[0], published_lift)
        row["undertrained"], row["data_limited"] = training == UNDERTRAINED, training == DATA_LIMITED
        row["line"] = verdict_line(row, published_source)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*VERDICT_COLUMNS, *EXTRA_COLUMNS])


def _single_row(unit: hyp.Unit, cell: pd.Series, published_lift: Mapping[hyp.Cell, float]) -> dict:
    published = published_lift.get(unit.cells[0], math.nan)
    return {**{c: cell[c] for c in VERDICT_COLUMNS}, "hypothesis": unit.name, "family_size": int(cell["family_size"]),
            "lift_pts": cell["lift_pts"], "mde": cell["mde"], "mde_alpha": cell["mde_alpha"],
            "seeds_needed": _seeds(cell, cell["delta"]), "published_lift": published,
            "seeds_for_published": _seeds(cell, published), "dropped_seeds": cell["dropped_seeds"],
            "n_tests": 1, "weakest": ""}


def _intersection_union_row(unit: hyp.Unit, cells: pd.DataFrame, published_lift: Mapping[hyp.Cell, float]) -> dict:
    p = cells["p_value"].to_numpy(float)
    weakest = cells.iloc[int(np.nanargmax(p))] if np.isfinite(p).any() else cells.iloc[0]
    untestable = cells[~cells["test"].map(stats.is_testable)]
    shown = untestable.iloc[0] if len(untestable) else weakest
    published = [published_lift.get((r.variant, r.reference, r.metric, r.domain), math.nan)
                 for r in cells.itertuples(index=False)]
    needed = [_seeds(r, r["delta"]) for _, r in cells.iterrows()]
    for_published = [_seeds(r, lift) for (_, r), lift in zip(cells.iterrows(), published)]
    tests = sorted(set(cells["test"][cells["test"].map(stats.is_testable)]))
    return {"variant": unit.hypothesis.variant, "reference": ", ".join(unit.hypothesis.references),
            "metric": "+".join(unit.hypothesis.metrics), "domain": unit.hypothesis.domain,
            "delta": shown["delta"], "ci_low": shown["ci_low"], "ci_high": shown["ci_high"],
            "test": shown["test"] if len(untestable) else
            f"intersection-union of {len(cells)} one-sided {'/'.join(tests)}",
            "n": int(cells["n"].min()), "p_adjusted": cells["p_adjusted"].iloc[0], "verdict": cells["verdict"].iloc[0],
            "hypothesis": unit.name, "family_size": int(cells["family_size"].iloc[0]), "lift_pts": shown["lift_pts"],
            "mde": shown["mde"], "mde_alpha": shown["mde_alpha"], "seeds_needed": _max(needed),
            "published_lift": min(published) if published and all(map(math.isfinite, published)) else math.nan,
            "seeds_for_published": _max(for_published),
            "dropped_seeds": "; ".join(sorted(set(d for d in cells["dropped_seeds"] if d))),
            "n_tests": len(cells), "weakest": f"{shown['reference']} {metric_label(shown['metric'])}"}


def _max(values: Sequence[float]) -> float:
    # Every pairwise test must pass, so the hypothesis needs what its hardest pair needs.
    return max(values) if values and all(math.isfinite(v) or v == math.inf for v in values) else math.nan


def _seeds(cell: pd.Series, lift: float) -> float:
    """Seeds for 80 % power at `lift` in the claimed direction, at this cell's family level."""
    improved = lift > 0 if stats.higher_is_better(cell["metric"]) else lift < 0
    if not (math.isfinite(lift) and improved and math.isfinite(cell["mde_alpha"])):
        return math.nan
    test = stats.PAIRED if cell["test"].startswith(stats.PAIRED) else stats.WELCH
    return stats.seeds_needed(lift, cell["sd_diff"], cell["mde_alpha"], cell["alternative"], test)


# ---------------------------------------------------------------- sentences


def _pts(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.2f}" if abs(value) >= 0.005 or value == 0 else f"{value:+.1g}"  # +0.003, not +0.00


def _count(seeds: float) -> str:
    return f"more than {stats.MAX_SEEDS:,}" if seeds == math.inf else f"{int(seeds)}"


def verdict_line(row: Mapping, published_source: str = "") -> str:
    """One sentence, e.g. `Crocodile vs MMoE, overall gAUC: +0.32 pts (95 % CI +0.11..+0.53), paired t on
    10 seeds, Holm p = 0.004: better.`"""
    where = "overall" if row["domain"] == "overall" else f"domain {row['domain']}"
    metrics = " and ".join(metric_label(m) for m in str(row["metric"]).split("+"))
    intersection_union = row.get("n_tests", 1) > 1 or str(row["test"]).startswith("intersection-union")
    head = f"{row['variant']} vs {'every one of ' if intersection_union else ''}{row['reference']}, {where} {metrics}"
    if row["verdict"] == NOT_TESTABLE:
        reason = str(row["test"]).removeprefix(f"{stats.NOT_TESTABLE}: ")
        pair = f" (vs {row['weakest']})" if row.get("weakest") else ""
        return f"{head}: not testable{pair}: {reason}."
    lift = 100 * row["delta"]
    observed = f"{_pts(lift)} pts (95 % CI {_pts(100 * row['ci_low'])}..{_pts(100 * row['ci_high'])})"
    dropped = f" (dropped seeds: {row['dropped_seeds']})" if row.get("dropped_seeds") else ""
    holm = row["family_size"] > 1
    if intersection_union:
        observed = f"weakest pair vs {row['weakest']} {observed}"
        test = (f"{row['test']} on {row['n']} seeds{dropped}, each at 0.05 and all must pass, largest p"
                f"{' (Holm)' if holm else ''} = {row['p_adjusted']:.3g}")
    else:
        test = f"{row['test']} on {row['n']} seeds{dropped}, {'Holm p' if holm else 'p'} = {row['p_adjusted']:.3g}"
    if row["verdict"] != NOT_SHOWN:
        text = f"{head}: {observed}, {test}: {row['verdict']}."
    else:
        improved = row["delta"] > 0 if stats.higher_is_better(str(row["metric"]).split("+")[0]) else row["delta"] < 0
        text = f"{head}: not shown: observed {observed}{'' if improved else ', not an improvement'}; {test}"
        if math.isfinite(row["mde"]):
            text += f"; this sweep could detect >= {100 * row['mde']:.2f} pts"
        if improved and (math.isfinite(row["seeds_needed"]) or row["seeds_needed"] == math.inf):
            text += f"; about {_count(row['seeds_needed'])} seeds needed for {_pts(lift)} pts"
        text += "."
    if math.isfinite(row.get("published_lift", math.nan)):
        source = f" ({published_source})" if published_source else ""
        seeds = row["seeds_for_published"]
        needed = (f"would need about {_count(seeds)} seeds at this sweep's spread"
                  if math.isfinite(seeds) or seeds == math.inf
                  else "is not an improvement" if row["published_lift"] <= 0 else "cannot be sized without a test")
        text += f" The paper's published {_pts(100 * row['published_lift'])} pts{source} {needed}."
    return text


# ---------------------------------------------------------------- training quality (synthetic data)


def bayes_gap(runs: pd.DataFrame, variants: Sequence[str], split: str = "test") -> pd.DataFrame | None:
    """Per variant: mean overall AUC and Bayes AUC over its finished seeds, (auc - .5) / (bayes - .5),
    and how many of those runs were still improving when the epoch budget ended (NaN: not recorded).

    None where the data have no planted truth (no {split}_bayesauc_overall column).
    """
    auc, bayes = f"{split}_auc_overall", f"{split}_bayesauc_overall"
    if bayes not in runs.columns or auc not in runs.columns or runs[bayes].isna().all():
        return None
    improving = _still_improving(runs)
    rows = []
    for variant in variants:
        mask = (runs["variant"] == variant) & runs[auc].notna() & runs[bayes].notna()
        these = runs[mask]
        if these.empty:
            continue
        mean_auc, mean_bayes = float(these[auc].mean()), float(these[bayes].mean())
        gap = mean_bayes - 0.5
        rows.append({"variant": variant, "n": len(these), "auc": mean_auc, "bayes_auc": mean_bayes,
                     "fraction": (mean_auc - 0.5) / gap if gap > 0 else math.nan,
                     "still_improving": float(improving[mask].sum()) if improving is not None else math.nan})
    return pd.DataFrame(rows, columns=["variant", "n", "auc", "bayes_auc", "fraction", "still_improving"])


def still_improving(best_epoch, epochs_run, epochs):
    """The run's best epoch was the last one its budget allowed, so it may have had more to gain.
    Plain ints or aligned Series (elementwise)."""
    return (best_epoch == epochs_run) & (epochs_run >= epochs)


def _still_improving(runs: pd.DataFrame) -> pd.Series | None:
    """(runs,) bool, still_improving per row; None where the results lack the epoch columns (older sweeps)."""
    if not {"best_epoch", "epochs_run", "epochs"} <= set(runs.columns):
        return None
    return still_improving(runs["best_epoch"], runs["epochs_run"], runs["epochs"])


def training_quality(gap: pd.DataFrame | None) -> str:
    """TRAINED, UNDERTRAINED or DATA_LIMITED (see the module docstring); TRAINED without a truth."""
    if gap is None or gap.empty:
        return TRAINED
    if gap["fraction"].isna().all():
        return UNDERTRAINED
    if gap["fraction"].max() >= UNDERTRAINED_BELOW:
        return TRAINED
    return UNDERTRAINED if _mostly_improving(gap).any() else DATA_LIMITED


def _mostly_improving(gap: pd.DataFrame) -> pd.Series:
    """(variants,) bool: most of the variant's runs were still improving at their last allowed epoch.
    Unknown epochs count as still improving: no evidence of convergence, so no milder flag."""
    return gap["still_improving"].fillna(gap["n"]) > gap["n"] / 2


def bayes_line(gap: pd.DataFrame) -> str:
    # One decimal: a best of 89.6 % printed as "90 %" next to "needed >= 90 %: undertrained" read as a contradiction.
    parts = ", ".join(f"{r.variant} {100 * r.fraction:.1f} %" for r in gap.itertuples(index=False))
    best = gap.loc[gap["fraction"].idxmax()] if gap["fraction"].notna().any() else None
    text = (f"Training quality: overall test AUC as a fraction of the Bayes gap, (auc - 0.5) / (bayes - 0.5): {parts}"
            f" (Bayes AUC {gap['bayes_auc'].mean():.4f})")
    if best is None:
        return f"{text}; {UNDERTRAINED}."
    quality = training_quality(gap)
    text = f"{text}; best {100 * best['fraction']:.1f} % ({best['variant']}), needed >= 90 %: {quality}"
    runs, improving = int(gap["n"].sum()), gap["still_improving"]
    if quality == UNDERTRAINED and improving.notna().all():
        behind = ", ".join(f"{r.variant} {int(r.still_improving)} of {r.n}"
                           for r in gap[_mostly_improving(gap)].itertuples(index=False))
        return (f"{text} (runs still improving at their last allowed epoch: {behind}; more epochs would change "
                f"the numbers).")
    if quality == DATA_LIMITED:
        return (f"{text} ({runs - int(improving.sum())} of {runs} runs peaked before their last allowed epoch, so "
                f"more epochs will not close the gap (more data may); the table compares models converged on "
                f"this much data).")
    return f"{text}."


def headline(verdicts: pd.DataFrame, gap: pd.DataFrame | None, study: str, declared: int) -> tuple[str, ...]:
    """The report's first section and the sweep's last terminal lines."""
    if study == "search":
        lines = ["No verdict: a search is exploratory (ranked on validation) and tests no hypothesis; replicate "
                 "its best configuration (e.g. best_crocodile) to test one."]
    elif not declared:
        lines = ["No verdict: the space file declares no hypotheses, so this sweep claims nothing; add "
                 "`hypotheses:` to it (ablation and per-domain comparisons are in stats.csv)."]
    else:
        lines = list(verdicts["line"])
    if gap is not None and len(gap):
        lines.append(bayes_line(gap))
    return tuple(lines)


def published_lifts(published: pd.DataFrame, dataset: str | None, table: str, method_of: Mapping[str, str],
                    cells: Sequence[hyp.Cell]) -> tuple[dict[hyp.Cell, float], str]:
    """The paper's lift (metric units) for each cell whose two arms have published counterparts, and its source.

    On synthetic data the KuaiRand-1K numbers stand in, labelled as such.
    """
    source = dataset if dataset in PUBLISHED_NAMES else REFERENCE_DATASET
    paper = published[(published["dataset"] == source) & (published["table"] == table)]
    value = {(r.method, r.metric, r.domain): float(r.value) for r in paper.itertuples(index=False)}
    lifts = {}
    for variant, reference, metric, domain in cells:
        if variant in method_of and reference in method_of:
            a = value.get((method_of[variant], metric, domain))
            b = value.get((method_of[reference], metric, domain))
            if a is not None and b is not None:
                lifts[(variant, reference, metric, domain)] = a - b
    label = PUBLISHED_NAMES[source] + ("" if dataset in PUBLISHED_NAMES else ", a different dataset")
    return lifts, label
