"""Significance protocol: one comparison "variant vs reference" over seeds, and a table of them.

Protocol (decided before any result is seen; the comparisons come from the sweep file):
- per arm: mean and sample std (ddof=1) over seeds; lift % = 100 * (mean - ref_mean) / ref_mean;
- delta = mean - ref_mean with a 95 % t confidence interval;
- the test: a paired t-test when both arms ran exactly the same seeds (same seed = same data order
  and same shared init, which the model core guarantees), Welch's t-test otherwise; the name of the
  test is part of every result;
- an exact permutation test (all sign flips / all re-assignments) as a robustness column only;
- Holm correction over all comparisons of one table (variants x metrics x domains);
- significant = Holm-adjusted p < 0.05 AND delta in the claimed direction (an improvement over the
  reference: higher AUC/gAUC, lower logloss);
- Hedges g and the minimum detectable effect (80 % power, two-sided alpha 0.05) so that
  "not significant" can be read against what the cell could have detected.
Wilcoxon and percentile-bootstrap stars are deliberately absent: with 6 seeds the Wilcoxon p-value
cannot go below 0.03 and the bootstrap's false-positive rate is far above its nominal level.
"""
from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

ALPHA = 0.05
CONFIDENCE = 0.95
POWER = 0.8
# Same convention as model.config.LOWER_IS_BETTER; repeated here so that reports do not import torch.
LOWER_IS_BETTER = frozenset({"logloss"})
# Above this many arrangements the permutation test samples instead of enumerating (seeded, so the
# report stays deterministic). 6 + 6 seeds have 924 re-assignments and 6 paired seeds 64 sign flips.
MAX_EXACT_ARRANGEMENTS = 200_000
MONTE_CARLO_ARRANGEMENTS = 100_000

PAIRED = "paired t"
WELCH = "Welch t"
NOT_TESTED = "none (n < 2)"

STATS_COLUMNS = (
    "table", "variant", "reference", "metric", "domain", "split", "n", "ref_n", "expected_n",
    "mean", "ref_mean", "std", "ref_std", "lift_pct", "delta", "ci_low", "ci_high", "test",
    "p_value", "p_adjusted", "p_permutation", "effect_size", "mde", "significant",
)
SUMMARY_COLUMNS = ("variant", "metric", "domain", "n", "mean", "std", "ci_low", "ci_high")


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def metric_column(split: str, metric: str, domain: str) -> str:
    return f"{split}_{metric}_{domain}"


# ---------------------------------------------------------------- one comparison


@dataclass(frozen=True)
class Comparison:
    """Variant vs reference over seeds. NaN where a quantity is undefined (n < 2, zero variance)."""

    n: int
    ref_n: int
    mean: float
    ref_mean: float
    std: float
    ref_std: float
    lift_pct: float
    delta: float
    ci_low: float
    ci_high: float
    test: str
    p_value: float
    p_permutation: float
    effect_size: float
    mde: float


def lift_pct(mean: float, ref_mean: float) -> float:
    """Relative change in percent, as the paper prints it (0.09 means +0.09 %)."""
    return 100.0 * (mean - ref_mean) / ref_mean if ref_mean != 0 else math.nan


def sample_std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan


def compare(scores: pd.Series, reference: pd.Series) -> Comparison:
    """Compare two arms given as scores indexed by seed; NaN scores count as missing seeds.

    Paired by seed when both arms have exactly the same seeds, Welch otherwise.
    """
    scores, reference = _clean(scores, "scores"), _clean(reference, "reference")
    x, y = scores.to_numpy(float), reference.to_numpy(float)
    mean = float(np.mean(x)) if len(x) else math.nan
    ref_mean = float(np.mean(y)) if len(y) else math.nan
    common = dict(n=len(x), ref_n=len(y), mean=mean, ref_mean=ref_mean, std=sample_std(x),
                  ref_std=sample_std(y), lift_pct=lift_pct(mean, ref_mean), delta=mean - ref_mean)
    if len(x) < 2 or len(y) < 2:
        return Comparison(**common, ci_low=math.nan, ci_high=math.nan, test=NOT_TESTED,
                          p_value=math.nan, p_permutation=math.nan, effect_size=math.nan, mde=math.nan)
    if set(scores.index) == set(reference.index):
        y = reference.loc[scores.index].to_numpy(float)  # align by seed
        ci_low, ci_high, p_value = paired_t(x, y)
        return Comparison(**common, ci_low=ci_low, ci_high=ci_high, test=PAIRED, p_value=p_value,
                          p_permutation=permutation_p_paired(x, y), effect_size=hedges_g(x, y),
                          mde=mde_paired(x - y))
    ci_low, ci_high, p_value = welch_t(x, y)
    return Comparison(**common, ci_low=ci_low, ci_high=ci_high, test=WELCH, p_value=p_value,
                      p_permutation=permutation_p_independent(x, y), effect_size=hedges_g(x, y),
                      mde=mde_independent(x, y))


def _clean(scores: pd.Series, name: str) -> pd.Series:
    if not isinstance(scores, pd.Series):
        raise ValueError(f"{name} must be a pandas Series of scores indexed by seed, got {type(scores).__name__}")
    if scores.index.has_duplicates:
        raise ValueError(f"{name} has duplicate seeds {sorted(scores.index[scores.index.duplicated()])}; "
                         "expected one score per seed")
    return scores.dropna().sort_index()


def paired_t(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(ci_low, ci_high, p) of mean(x - y), x[i] and y[i] from the same seed."""
    diff = x - y
    n = len(diff)
    se = sample_std(diff) / math.sqrt(n)
    ci_low, ci_high = _t_interval(float(np.mean(diff)), se, n - 1)
    with warnings.catch_warnings():
        # Identical arms give 0/0; scipy warns and returns NaN, which is the answer we want.
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(scipy.stats.ttest_rel(x, y).pvalue)
    return ci_low, ci_high, p


def welch_t(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(ci_low, ci_high, p) of mean(x) - mean(y) with Welch-Satterthwaite degrees of freedom."""
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1)) if se > 0 else math.nan
    ci_low, ci_high = _t_interval(float(np.mean(x) - np.mean(y)), se, df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(scipy.stats.ttest_ind(x, y, equal_var=False).pvalue)
    return ci_low, ci_high, p


def _t_interval(center: float, se: float, df: float) -> tuple[float, float]:
    if se == 0:
        return center, center  # every seed agrees: no spread to put an interval on
    if not math.isfinite(df):
        return math.nan, math.nan
    low, high = scipy.stats.t.interval(CONFIDENCE, df, loc=center, scale=se)
    return float(low), float(high)


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """95 % t confidence interval of the mean of `values` (NaN for n < 2)."""
    if len(values) < 2:
        return math.nan, math.nan
    return _t_interval(float(np.mean(values)), sample_std(values) / math.sqrt(len(values)), len(values) - 1)


def hedges_g(x: np.ndarray, y: np.ndarray) -> float:
    """(mean x - mean y) / pooled SD, small-sample corrected.

    Standardised by the pooled between-seed SD (not the SD of paired differences) in both the paired
    and the unpaired case, so that effect sizes of different cells are on one scale.
    """
    nx, ny = len(x), len(y)
    df = nx + ny - 2
    pooled = math.sqrt(((nx - 1) * np.var(x, ddof=1) + (ny - 1) * np.var(y, ddof=1)) / df)
    if pooled == 0:
        return math.nan
    correction = math.exp(math.lgamma(df / 2) - math.log(math.sqrt(df / 2)) - math.lgamma((df - 1) / 2))
    return float((np.mean(x) - np.mean(y)) / pooled * correction)


def mde_paired(diff: np.ndarray) -> float:
    """Smallest |mean difference| a paired t-test on these seeds detects with 80 % power."""
    return _mde_d_paired(len(diff)) * sample_std(diff)


def mde_independent(x: np.ndarray, y: np.ndarray) -> float:
    """Smallest |mean difference| a two-sample t-test detects with 80 % power, in metric units.

    Uses the pooled-variance power function (statsmodels has no Welch power); with near-equal group
    sizes and variances the two agree closely.
    """
    nx, ny = len(x), len(y)
    pooled = math.sqrt(((nx - 1) * np.var(x, ddof=1) + (ny - 1) * np.var(y, ddof=1)) / (nx + ny - 2))
    return _mde_d_independent(nx, ny) * pooled


@functools.lru_cache(maxsize=None)
def _mde_d_paired(n: int) -> float:
    # Cached: the standardised MDE depends only on n, and root finding costs milliseconds.
    return float(TTestPower().solve_power(effect_size=None, nobs=n, alpha=ALPHA, power=POWER,
                                          alternative="two-sided"))


@functools.lru_cache(maxsize=None)
def _mde_d_independent(nx: int, ny: int) -> float:
    return float(TTestIndPower().solve_power(effect_size=None, nobs1=nx, ratio=ny / nx, alpha=ALPHA,
                                             power=POWER, alternative="two-sided"))


def permutation_p_paired(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided sign-flip test of mean(x - y): exact over all 2^n flips up to MAX_EXACT_ARRANGEMENTS."""
    diff = np.asarray(x, float) - np.asarray(y, float)
    n = len(diff)
    if 2 ** n <= MAX_EXACT_ARRANGEMENTS:
        return _p_two_sided(np.abs(_sign_flips(n) @ diff) / n, abs(diff.mean()), exact=True)
    rng = np.random.default_rng(0)
    signs = rng.choice((1.0, -1.0), size=(MONTE_CARLO_ARRANGEMENTS, n))
    return _p_two_sided(np.abs(signs @ diff) / n, abs(diff.mean()), exact=False)


@functools.lru_cache(maxsize=16)
def _sign_flips(n: int) -> np.ndarray:
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    signs.flags.writeable = False
    return signs


def permutation_p_independent(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided test of mean(x) - mean(y) over all re-assignments of the pooled scores to the arms."""
    pooled = np.concatenate([x, y]).astype(float)
    nx, total = len(x), len(x) + len(y)
    observed = abs(float(np.mean(x) - np.mean(y)))
    exact = math.comb(total, nx) <= MAX_EXACT_ARRANGEMENTS
    in_x = _assignments(nx, total) if exact else _sampled_assignments(nx, total)
    sum_x = in_x @ pooled
    null_stats = np.abs(sum_x / nx - (pooled.sum() - sum_x) / (total - nx))
    return _p_two_sided(null_stats, observed, exact=exact)


@functools.lru_cache(maxsize=16)
def _assignments(nx: int, total: int) -> np.ndarray:
    """All ways to pick the nx members of arm x among `total` scores, as a boolean matrix.

    Cached because a table repeats the same (nx, total) for every metric and domain.
    """
    in_x = np.zeros((math.comb(total, nx), total))
    for row, chosen in enumerate(itertools.combinations(range(total), nx)):
        in_x[row, list(chosen)] = 1.0
    in_x.flags.writeable = False
    return in_x


def _sampled_assignments(nx: int, total: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (np.argsort(rng.random((MONTE_CARLO_ARRANGEMENTS, total)), axis=1) < nx).astype(float)


def _p_two_sided(null_stats: np.ndarray, observed: float, exact: bool) -> float:
    # Relative tolerance so that arrangements equal to the observed one up to float rounding count.
    hits = int(np.sum(null_stats >= observed * (1 - 1e-9) - 1e-15))
    if exact:
        return hits / len(null_stats)
    return (hits + 1) / (len(null_stats) + 1)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values; NaN (untested) entries stay NaN and do not count in the family."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    tested = np.isfinite(p)
    if tested.any():
        adjusted[tested] = multipletests(p[tested], alpha=ALPHA, method="holm")[1]
    return adjusted


def is_significant(p_adjusted: float, delta: float, metric: str) -> bool:
    """Holm-adjusted p < 0.05 and the difference is an improvement over the reference."""
    improved = delta > 0 if higher_is_better(metric) else delta < 0
    return bool(p_adjusted < ALPHA and improved)


# ---------------------------------------------------------------- from the results store


def latest_ok_runs(results: pd.DataFrame, seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per (variant, seed): the latest row with status "ok" (a failed seed may be re-run).

    Seeds with only failed rows are absent, i.e. missing. With `seeds`, rows of undeclared seeds are
    dropped, because n is counted against the seeds declared up front.
    """
    required = ("variant", "seed", "status", "finished_at")
    missing = [c for c in required if c not in results.columns]
    if missing:
        raise ValueError(f"results frame lacks column(s) {missing}; expected at least {list(required)}")
    ok = results[results["status"] == "ok"]
    if seeds is not None:
        ok = ok[ok["seed"].isin(list(seeds))]
    ok = ok.sort_values("finished_at", kind="stable").drop_duplicates(["variant", "seed"], keep="last")
    return ok.sort_values(["variant", "seed"], kind="stable").reset_index(drop=True)


def seed_scores(runs: pd.DataFrame, variant: str, column: str) -> pd.Series:
    """Scores of one variant in one metric column, indexed by seed, missing seeds dropped."""
    rows = runs[runs["variant"] == variant]
    if column not in runs.columns or rows.empty:
        return pd.Series([], dtype=float, index=pd.Index([], dtype=int, name="seed"))
    return pd.Series(rows[column].to_numpy(float), index=pd.Index(rows["seed"].to_numpy(int), name="seed")).dropna()


@dataclass(frozen=True)
class ComparisonSpec:
    """A comparison declared in the sweep file before any result exists."""

    variant: str
    reference: str


def stats_frame(runs: pd.DataFrame, comparisons: Sequence[ComparisonSpec], metrics: Sequence[str],
                domains: Sequence[str], table: str, expected_n: int, split: str = "test") -> pd.DataFrame:
    """The long stats table: one row per comparison x metric x domain, Holm-adjusted over all of them.

    `runs` has one row per (variant, seed) (see latest_ok_runs); domain names include "overall".
    """
    rows = []
    for spec in comparisons:
        for metric in metrics:
            for domain in domains:
                column = metric_column(split, metric, domain)
                result = compare(seed_scores(runs, spec.variant, column), seed_scores(runs, spec.reference, column))
                rows.append(dict(table=table, variant=spec.variant, reference=spec.reference, metric=metric,
                                 domain=domain, split=split, expected_n=expected_n, **asdict(result)))
    frame = pd.DataFrame(rows, columns=[c for c in STATS_COLUMNS if c not in ("p_adjusted", "significant")])
    frame["p_adjusted"] = holm(frame["p_value"].to_numpy(float)) if len(frame) else []
    frame["significant"] = [is_significant(p, d, m) for p, d, m in
                            zip(frame["p_adjusted"], frame["delta"], frame["metric"])]
    frame["significant"] = frame["significant"].astype(bool)
    return frame[list(STATS_COLUMNS)]


def summary_frame(runs: pd.DataFrame, variants: Sequence[str], metrics: Sequence[str],
                  domains: Sequence[str], split: str = "test") -> pd.DataFrame:
    """Per variant x metric x domain: n, mean, sample std and the 95 % t interval of the mean."""
    rows = []
    for variant in variants:
        for metric in metrics:
            for domain in domains:
                values = seed_scores(runs, variant, metric_column(split, metric, domain)).to_numpy(float)
                ci_low, ci_high = mean_interval(values)
                rows.append(dict(variant=variant, metric=metric, domain=domain, n=len(values),
                                 mean=float(np.mean(values)) if len(values) else math.nan,
                                 std=sample_std(values), ci_low=ci_low, ci_high=ci_high))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
