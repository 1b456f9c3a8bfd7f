"""One comparison "variant vs reference" over seeds: pure arithmetic, no families, no verdicts.

What a comparison computes (the families, Holm and the verdicts that use it are in sweeper.protocol
and sweeper.verdicts):
- pairing: by default a paired t-test on the seeds both arms finished (a seed fixes the data order,
  and the initial weights of the modules two variants share where initialisation is derived per
  module); seeds only one arm finished are dropped and named. `seed_test="welch"` uses every
  finished seed of each arm instead; `pair_corr` shows what pairing bought;
- delta = mean(variant) - mean(reference) over the seeds the test uses, with a 95 % t interval;
  lift (pts) = 100 * delta, as the paper prints it (0.32 means +0.32 points of AUC); the relative
  lift 100 * delta / reference mean is a separate, labelled column;
- cells that cannot be tested are labelled, not computed: fewer than 2 usable seeds, zero variance
  in both arms, a metric constant across all runs (a gAUC resting on one user), or a constant
  difference (t would be infinite). They get no p, no interval, no MDE;
- an exact permutation p-value (all sign flips / re-assignments), two-sided, as a robustness column
  with its floor: with 6 paired seeds it cannot go below 2/64 = 0.031;
- Hedges g, the per-seed correlation of the two arms (what pairing buys), and the MDE and seeds
  needed at a given alpha (the caller passes the alpha its family actually uses).
Vectorised cores (`*_many`) take a leading replicate axis so that calibration simulations run the
very code the report runs; the scalar functions call them with one replicate.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.stats
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
# A spread below this (relative to the scores' scale) is float rounding, not seed-to-seed variation.
ZERO_SPREAD = 1e-12
# Seeds-needed searches stop here: beyond it the answer is "more than anyone will run".
MAX_SEEDS = 100_000

PAIRED = "paired t"
WELCH = "Welch t"
SEED_TESTS = {"paired": PAIRED, "welch": WELCH}  # space-file name -> test
ALTERNATIVES = ("two-sided", "greater", "less")
NOT_TESTABLE = "not testable"

SUMMARY_COLUMNS = ("variant", "metric", "domain", "n", "mean", "std", "ci_low", "ci_high")


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def improvement(metric: str) -> str:
    """The one-sided alternative that means "variant improves on reference" for this metric."""
    return "greater" if higher_is_better(metric) else "less"


def metric_column(split: str, metric: str, domain: str) -> str:
    return f"{split}_{metric}_{domain}"


def is_testable(test: str) -> bool:
    return not test.startswith(NOT_TESTABLE)


# ---------------------------------------------------------------- one comparison


@dataclass(frozen=True)
class Comparison:
    """Variant vs reference over seeds. NaN where a quantity is undefined; `test` says why."""

    n: int  # seeds the test uses: the common seeds (paired) or the variant's seeds (Welch)
    variant_n: int  # seeds each arm finished
    ref_n: int
    dropped_seeds: str  # seeds left out of a paired test, and which arm lacks them
    mean: float  # over the seeds the test uses
    ref_mean: float
    std: float
    ref_std: float
    delta: float
    lift_pts: float
    lift_rel_pct: float
    ci_low: float
    ci_high: float
    test: str  # PAIRED, WELCH, or "not testable: <reason>"
    alternative: str
    p_value: float
    p_permutation: float
    p_permutation_floor: float
    pair_corr: float
    sd_diff: float  # SD of one seed's difference (paired: of the differences; Welch: sqrt(s1^2 + s2^2))
    effect_size: float


def lift_pts(mean: float, ref_mean: float) -> float:
    """Absolute lift in points, as the paper prints it: 0.66373 vs 0.66057 is +0.316."""
    return 100.0 * (mean - ref_mean)


def lift_rel_pct(mean: float, ref_mean: float) -> float:
    """Relative lift in percent of the reference: 100 * (mean - ref) / ref (not what the paper prints)."""
    return 100.0 * (mean - ref_mean) / ref_mean if ref_mean != 0 else math.nan


def sample_std(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan


def compare(scores: pd.Series, reference: pd.Series, seed_test: str = "paired",
            alternative: str = "two-sided") -> Comparison:
    """Compare two arms given as scores indexed by seed; NaN scores count as missing seeds.

    seed_test "paired": paired t on the common seeds; "welch": Welch t on all seeds of each arm.
    alternative: "two-sided", or "greater"/"less" for a one-sided test of variant - reference.
    """
    if seed_test not in SEED_TESTS:
        raise ValueError(f"seed_test must be one of {sorted(SEED_TESTS)}, got {seed_test!r}")
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    scores, reference = _clean(scores, "scores"), _clean(reference, "reference")
    if seed_test == "paired":
        common = scores.index.intersection(reference.index)
        dropped = _dropped(scores.index, reference.index)
        x, y = scores.loc[common].to_numpy(float), reference.loc[common].to_numpy(float)
    else:
        dropped = ""
        x, y = scores.to_numpy(float), reference.to_numpy(float)
    mean = float(np.mean(x)) if len(x) else math.nan
    ref_mean = float(np.mean(y)) if len(y) else math.nan
    common_fields = dict(n=len(x), variant_n=len(scores), ref_n=len(reference), dropped_seeds=dropped, mean=mean,
                         ref_mean=ref_mean, std=sample_std(x), ref_std=sample_std(y), delta=mean - ref_mean,
                         lift_pts=lift_pts(mean, ref_mean), lift_rel_pct=lift_rel_pct(mean, ref_mean),
                         alternative=alternative)
    reason = degenerate_reason(x, y, paired=seed_test == "paired")
    if reason:
        return Comparison(**common_fields, ci_low=math.nan, ci_high=math.nan, test=f"{NOT_TESTABLE}: {reason}",
                          p_value=math.nan, p_permutation=math.nan, p_permutation_floor=math.nan,
                          pair_corr=pair_correlation(x, y) if seed_test == "paired" else math.nan,
                          sd_diff=math.nan, effect_size=math.nan)
    if seed_test == "paired":
        ci_low, ci_high, p_value = paired_t(x, y, alternative)
        return Comparison(**common_fields, ci_low=ci_low, ci_high=ci_high, test=PAIRED, p_value=p_value,
                          p_permutation=permutation_p_paired(x, y), p_permutation_floor=permutation_floor(len(x)),
                          pair_corr=pair_correlation(x, y), sd_diff=sample_std(x - y), effect_size=hedges_g(x, y))
    ci_low, ci_high, p_value = welch_t(x, y, alternative)
    return Comparison(**common_fields, ci_low=ci_low, ci_high=ci_high, test=WELCH, p_value=p_value,
                      p_permutation=permutation_p_independent(x, y),
                      p_permutation_floor=permutation_floor(len(x), len(y)), pair_corr=math.nan,
                      sd_diff=math.hypot(sample_std(x), sample_std(y)), effect_size=hedges_g(x, y))


def _clean(scores: pd.Series, name: str) -> pd.Series:
    if not isinstance(scores, pd.Series):
        raise ValueError(f"{name} must be a pandas Series of scores indexed by seed, got {type(scores).__name__}")
    if scores.index.has_duplicates:
        raise ValueError(f"{name} has duplicate seeds {sorted(scores.index[scores.index.duplicated()])}; "
                         "expected one score per seed")
    return scores.dropna().sort_index()


def _dropped(variant_seeds: pd.Index, reference_seeds: pd.Index) -> str:
    only_variant = sorted(set(variant_seeds) - set(reference_seeds))
    only_reference = sorted(set(reference_seeds) - set(variant_seeds))
    parts = [f"{', '.join(map(str, only_variant))} (no reference result)" if only_variant else "",
             f"{', '.join(map(str, only_reference))} (no variant result)" if only_reference else ""]
    return "; ".join(p for p in parts if p)


def _no_spread(values: np.ndarray) -> bool:
    return float(np.ptp(values)) <= ZERO_SPREAD * max(1.0, float(np.max(np.abs(values))))


def degenerate_reason(x: np.ndarray, y: np.ndarray, paired: bool) -> str:
    """Why this cell cannot be tested ("" if it can). x and y are aligned by seed when paired."""
    if paired and len(x) < 2:
        return f"fewer than 2 common seeds ({len(x)})"
    if not paired and min(len(x), len(y)) < 2:
        return f"fewer than 2 seeds in an arm ({len(x)} and {len(y)})"
    if _no_spread(x) and _no_spread(y):
        if _no_spread(np.concatenate([x, y])):
            return (f"metric constant ({x[0]:.5g} in every run of both arms; e.g. a gAUC resting on one "
                    "user)")
        return "zero variance in both arms"
    if paired and _no_spread(x - y):
        return f"constant difference ({x[0] - y[0]:+.3g} on every seed; t would be infinite)"
    return ""


def pair_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of the two arms' per-seed scores: how much pairing by seed removes."""
    if len(x) < 3 or _no_spread(x) or _no_spread(y):
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


# ---------------------------------------------------------------- t-tests (vectorised cores)


def paired_t_many(diff: np.ndarray, alternative: str = "two-sided") -> tuple[np.ndarray, np.ndarray]:
    """(t, p) of mean(diff) = 0 along the last axis; diff (..., n). p is NaN where the SD is 0."""
    n = diff.shape[-1]
    sd = np.std(diff, axis=-1, ddof=1)  # (...,)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.mean(diff, axis=-1) / (sd / math.sqrt(n))
    t = np.where(sd > 0, t, np.nan)
    return t, _t_p(t, n - 1, alternative)


def _t_p(t: np.ndarray, df, alternative: str) -> np.ndarray:
    if alternative == "two-sided":
        return 2 * scipy.stats.t.sf(np.abs(t), df)
    if alternative == "greater":
        return scipy.stats.t.sf(t, df)
    return scipy.stats.t.cdf(t, df)


def paired_t(x: np.ndarray, y: np.ndarray, alternative: str = "two-sided") -> tuple[float, float, float]:
    """(ci_low, ci_high, p) of mean(x - y), x[i] and y[i] from the same seed; the CI is two-sided 95 %."""
    diff = np.asarray(x, float) - np.asarray(y, float)
    _, p = paired_t_many(diff[None, :], alternative)
    ci_low, ci_high = _t_interval(float(np.mean(diff)), sample_std(diff) / math.sqrt(len(diff)), len(diff) - 1)
    return ci_low, ci_high, float(p[0])


def welch_t(x: np.ndarray, y: np.ndarray, alternative: str = "two-sided") -> tuple[float, float, float]:
    """(ci_low, ci_high, p) of mean(x) - mean(y) with Welch-Satterthwaite degrees of freedom."""
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    se = math.sqrt(vx + vy)
    df = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1)) if se > 0 else math.nan
    ci_low, ci_high = _t_interval(float(np.mean(x) - np.mean(y)), se, df)
    t = (np.mean(x) - np.mean(y)) / se if se > 0 else math.nan
    return ci_low, ci_high, float(_t_p(np.asarray(t), df, alternative))


def _t_interval(center: float, se: float, df: float) -> tuple[float, float]:
    if not (se > 0 and math.isfinite(df)):
        return math.nan, math.nan  # no spread (or no df): a zero-width interval would be a lie
    low, high = scipy.stats.t.interval(CONFIDENCE, df, loc=center, scale=se)
    return float(low), float(high)


def mean_interval(values: np.ndarray) -> tuple[float, float]:
    """95 % t confidence interval of the mean of `values` (NaN for n < 2)."""
    if len(values) < 2:
        return math.nan, math.nan
    if _no_spread(values):
        return float(values[0]), float(values[0])  # a mean, not a test: every run agrees
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


# ---------------------------------------------------------------- Holm (vectorised core)


def holm_many(p: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values along the last axis, p (..., k). NaN entries stay NaN and are not counted."""
    p = np.asarray(p, float)
    tested = np.isfinite(p)
    m = tested.sum(axis=-1, keepdims=True)  # (..., 1): the family's size, untested entries excluded
    order = np.argsort(np.where(tested, p, np.inf), axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1)  # (..., k), NaN last
    factors = m - np.arange(p.shape[-1])  # m, m-1, ..., <= 0 on the NaN tail
    adjusted = np.minimum(np.maximum.accumulate(np.where(factors > 0, ranked * factors, -np.inf), axis=-1), 1.0)
    out = np.empty_like(p)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.where(tested, out, np.nan)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values of one family; NaN (untested) entries stay NaN and do not count."""
    p = np.asarray(p_values, dtype=float)
    return holm_many(p[None, :])[0] if len(p) else p


def holm_first_alpha(family_size: int, alpha: float = ALPHA) -> float:
    """The level the smallest p of a family must beat: Holm's first step, alpha / size."""
    return alpha / max(family_size, 1)


# ---------------------------------------------------------------- permutation p-values


def permutation_floor(nx: int, ny: int | None = None) -> float:
    """The smallest two-sided exact permutation p-value attainable: 2/2^n paired, 2/C(nx+ny, nx) otherwise."""
    arrangements = 2 ** nx if ny is None else math.comb(nx + ny, nx)
    return min(1.0, 2 / arrangements) if arrangements <= MAX_EXACT_ARRANGEMENTS else 1 / (MONTE_CARLO_ARRANGEMENTS + 1)


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


# ---------------------------------------------------------------- power: MDE and seeds needed


def _power_alternative(alternative: str) -> str:
    # statsmodels names a one-sided test "larger"/"smaller"; we solve for |effect| in the claimed direction.
    return "two-sided" if alternative == "two-sided" else "larger"


@functools.lru_cache(maxsize=None)
def _mde_d_paired(n: int, alpha: float, alternative: str) -> float:
    # Cached: the standardised MDE depends only on (n, alpha, sidedness), and root finding costs ms.
    return float(TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=POWER,
                                          alternative=_power_alternative(alternative)))


@functools.lru_cache(maxsize=None)
def _mde_d_independent(nx: int, ny: int, alpha: float, alternative: str) -> float:
    return float(TTestIndPower().solve_power(effect_size=None, nobs1=nx, ratio=ny / nx, alpha=alpha, power=POWER,
                                             alternative=_power_alternative(alternative)))


def mde(comparison: Comparison, alpha: float) -> float:
    """Smallest |delta| this cell's test detects with 80 % power at `alpha` (NaN if not testable).

    Welch cells use the pooled-variance power function (statsmodels has no Welch power); with
    near-equal group sizes and variances the two agree closely.
    """
    c = comparison
    if c.test == PAIRED:
        return _mde_d_paired(c.n, alpha, c.alternative) * c.sd_diff
    if c.test == WELCH:
        pooled = math.sqrt(((c.variant_n - 1) * c.std ** 2 + (c.ref_n - 1) * c.ref_std ** 2)
                           / (c.variant_n + c.ref_n - 2))
        return _mde_d_independent(c.variant_n, c.ref_n, alpha, c.alternative) * pooled
    return math.nan


def _t_power(noncentrality: float, df: float, alpha: float, alternative: str) -> float:
    """P(reject) of a t-test with this noncentrality (effect in the claimed direction).

    scipy's noncentral t directly, because statsmodels' power returns NaN for large effects (d > ~10),
    and a far tail that underflows to NaN is taken as the 0 it is.
    """
    two_sided = alternative == "two-sided"
    critical = float(scipy.stats.t.ppf(1 - (alpha / 2 if two_sided else alpha), df))
    upper = float(scipy.stats.nct.sf(critical, df, noncentrality))
    if not math.isfinite(upper):
        upper = float(scipy.stats.norm.sf(critical - noncentrality))
    lower = float(scipy.stats.nct.cdf(-critical, df, noncentrality)) if two_sided else 0.0
    return upper + (lower if math.isfinite(lower) else 0.0)


def power_paired(n: int, lift: float, sd_diff: float, alpha: float, alternative: str = "two-sided") -> float:
    """Power of a paired t on n seeds for a true lift (metric units) with this SD of per-seed differences."""
    if n < 2 or not sd_diff > 0:
        return math.nan
    return _t_power(abs(lift) / sd_diff * math.sqrt(n), n - 1, alpha, alternative)


def seeds_needed(lift: float, sd_diff: float, alpha: float, alternative: str = "two-sided",
                 test: str = PAIRED, power: float = POWER) -> float:
    """Seeds (per arm) for `power` at a true |lift| in metric units; inf beyond MAX_SEEDS, NaN if unknown.

    Paired: sd_diff is the SD of one seed's difference. Welch: the arms' SD is taken as sd_diff / sqrt 2.
    """
    if not (math.isfinite(lift) and math.isfinite(sd_diff) and sd_diff > 0) or lift == 0:
        return math.nan
    if test not in (PAIRED, WELCH):
        return math.nan

    def powered(n: int) -> bool:
        if test == PAIRED:
            return _t_power(abs(lift) / sd_diff * math.sqrt(n), n - 1, alpha, alternative) >= power
        # Two arms of n seeds, each with SD sd_diff / sqrt 2: the pooled two-sample t on 2n - 2 df.
        return _t_power(abs(lift) / sd_diff * math.sqrt(n), 2 * n - 2, alpha, alternative) >= power
    if powered(2):
        return 2
    low, high = 2, 4
    while not powered(high):  # doubling, then bisection: power rises with n
        if high >= MAX_SEEDS:
            return math.inf
        low, high = high, min(2 * high, MAX_SEEDS)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if powered(middle) else (middle, high)
    return high


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
