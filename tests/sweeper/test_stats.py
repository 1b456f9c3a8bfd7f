"""The significance protocol against scipy/statsmodels, by hand, and by simulation."""
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from sweeper import stats
from sweeper.stats import ComparisonSpec

X = np.array([0.7841, 0.7852, 0.7839, 0.7860, 0.7848, 0.7855])
Y = np.array([0.7835, 0.7849, 0.7831, 0.7851, 0.7846, 0.7847])


def series(values, seeds=None):
    seeds = range(len(values)) if seeds is None else seeds
    return pd.Series(np.asarray(values, float), index=list(seeds))


def test_paired_when_seeds_match_and_values_match_scipy():
    result = stats.compare(series(X), series(Y))
    reference = scipy.stats.ttest_rel(X, Y)
    diff = X - Y
    low, high = scipy.stats.t.interval(0.95, len(X) - 1, loc=diff.mean(),
                                       scale=diff.std(ddof=1) / math.sqrt(len(X)))
    assert result.test == stats.PAIRED
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-12)
    assert result.delta == pytest.approx(X.mean() - Y.mean())
    assert result.std == pytest.approx(X.std(ddof=1)) and result.ref_std == pytest.approx(Y.std(ddof=1))
    assert result.lift_pct == pytest.approx(100 * (X.mean() - Y.mean()) / Y.mean())
    assert (result.n, result.ref_n) == (6, 6)


def test_pairing_is_by_seed_not_by_position():
    shuffled = series(Y[::-1], seeds=range(5, -1, -1))  # same seed -> same value, listed backwards
    assert stats.compare(series(X), shuffled).p_value == pytest.approx(scipy.stats.ttest_rel(X, Y).pvalue)


def test_welch_when_seed_sets_differ_and_values_match_scipy():
    x = series(X[:5])  # seed 5 failed
    result = stats.compare(x, series(Y))
    reference = scipy.stats.ttest_ind(X[:5], Y, equal_var=False)
    assert result.test == stats.WELCH
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-10)
    assert (result.n, result.ref_n) == (5, 6)


def test_n_below_two_is_not_tested():
    result = stats.compare(series([0.78]), series(Y))
    assert result.test == stats.NOT_TESTED
    assert math.isnan(result.p_value) and math.isnan(result.ci_low) and math.isnan(result.mde)
    assert result.mean == pytest.approx(0.78) and math.isnan(result.std)
    empty = stats.compare(series([]), series(Y))
    assert empty.n == 0 and math.isnan(empty.mean) and math.isnan(empty.delta)
    assert not stats.is_significant(math.nan, 0.01, "auc")


def test_nan_scores_count_as_missing_seeds():
    result = stats.compare(series([0.78, np.nan, 0.79]), series([0.77, 0.775, 0.772]))
    assert result.n == 2 and result.test == stats.WELCH


def test_hand_checkable_small_input():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 df
    result = stats.compare(series([2.0, 4.0, 6.0]), series([1.0, 2.0, 3.0]))
    assert result.delta == 2.0
    assert result.p_value == pytest.approx(2 * scipy.stats.t.sf(2 * math.sqrt(3), 2))
    half_width = scipy.stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert (result.ci_low, result.ci_high) == pytest.approx((2 - half_width, 2 + half_width))
    # all 8 sign flips of (1, 2, 3): only +++ and --- reach |mean| >= 2
    assert result.p_permutation == 2 / 8
    assert result.lift_pct == pytest.approx(100.0)


def test_permutation_exact_independent_hand_checkable():
    # 20 ways to pick 3 of 6; only the two extreme splits reach |difference of means| = 3
    assert stats.permutation_p_independent(np.array([1.0, 2, 3]), np.array([4.0, 5, 6])) == 2 / 20


@pytest.mark.parametrize("paired", [True, False])
def test_permutation_matches_scipy_exact(paired):
    # Continuous scores: X and Y are on a 1e-4 grid, where exact ties make scipy's float tolerance
    # and ours disagree (ours counts them, as exact integer arithmetic does: 224/924 for X vs Y).
    x, y = np.random.default_rng(7).normal(0, 1, (2, 6))
    kind = "samples" if paired else "independent"
    reference = scipy.stats.permutation_test(
        (x, y), lambda a, b, axis: np.mean(a, axis=axis) - np.mean(b, axis=axis),
        permutation_type=kind, n_resamples=np.inf, vectorized=True).pvalue
    ours = stats.permutation_p_paired(x, y) if paired else stats.permutation_p_independent(x, y)
    assert ours == pytest.approx(reference, rel=1e-12)
    assert stats.permutation_p_independent(X, Y) == 224 / 924


def test_hedges_g_and_mde():
    x, y = X, Y
    pooled = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
    df = 10
    correction = math.gamma(df / 2) / (math.sqrt(df / 2) * math.gamma((df - 1) / 2))
    assert stats.hedges_g(x, y) == pytest.approx((x.mean() - y.mean()) / pooled * correction)
    assert correction == pytest.approx(1 - 3 / (4 * df - 1), abs=2e-3)  # the usual approximation

    d_paired = TTestPower().solve_power(effect_size=None, nobs=6, alpha=0.05, power=0.8)
    assert stats.compare(series(x), series(y)).mde == pytest.approx(d_paired * (x - y).std(ddof=1))
    d_ind = TTestIndPower().solve_power(effect_size=None, nobs1=5, ratio=6 / 5, alpha=0.05, power=0.8)
    pooled5 = math.sqrt((4 * x[:5].var(ddof=1) + 5 * y.var(ddof=1)) / 9)
    assert stats.compare(series(x[:5]), series(y)).mde == pytest.approx(d_ind * pooled5)


def test_holm_matches_statsmodels_and_keeps_nan():
    p = [0.01, 0.04, np.nan, 0.03, 0.2]
    expected = multipletests([0.01, 0.04, 0.03, 0.2], method="holm")[1]
    adjusted = stats.holm(p)
    assert math.isnan(adjusted[2])
    np.testing.assert_allclose(adjusted[[0, 1, 3, 4]], expected, rtol=1e-12)


def test_significance_needs_the_claimed_direction():
    assert stats.is_significant(0.01, 0.002, "auc")
    assert not stats.is_significant(0.01, -0.002, "gauc")  # significantly worse is no star
    assert stats.is_significant(0.01, -0.002, "logloss")
    assert not stats.is_significant(0.06, 0.002, "auc")


def _simulate(rng, delta, paired, reps):
    """Fraction of reps where the protocol's test rejects at 0.05 and, separately, in the claimed direction."""
    seeds = list(range(6))
    rejected = improved = permutation_rejected = 0
    for _ in range(reps):
        if paired:
            shared = rng.normal(0.78, 0.01, 6)  # what a seed shares between arms (data order, init)
            y = shared + rng.normal(0, 1e-3, 6) / math.sqrt(2)
            x = shared + delta * 1e-3 + rng.normal(0, 1e-3, 6) / math.sqrt(2)  # SD of differences 1e-3
            result = stats.compare(series(x, seeds), series(y, seeds))
        else:
            y = rng.normal(0.78, 1e-3, 6)
            x = rng.normal(0.78 + delta * 1e-3, 1e-3, 6)
            result = stats.compare(series(x, seeds), series(y, range(10, 16)))
        rejected += result.p_value < 0.05
        improved += stats.is_significant(result.p_value, result.delta, "auc")
        permutation_rejected += result.p_permutation < 0.05
    return rejected / reps, improved / reps, permutation_rejected / reps


@pytest.mark.parametrize("paired", [True, False])
def test_aa_simulation_rejects_about_five_percent(paired):
    reps = 2000
    rate, directed, permutation_rate = _simulate(np.random.default_rng(12345), 0.0, paired, reps)
    margin = 3 * math.sqrt(0.05 * 0.95 / reps)  # three binomial standard errors
    assert rate <= 0.05 + margin
    assert directed <= 0.025 + margin
    assert permutation_rate <= 0.05 + margin
    assert (stats.PAIRED if paired else stats.WELCH) == stats.compare(
        series(X), series(Y) if paired else series(Y, range(10, 16))).test


@pytest.mark.parametrize("paired, floor", [(True, 0.9), (False, 0.75)])
def test_planted_two_sd_difference_is_detected(paired, floor):
    # Power at n = 6, d = 2: paired 0.97, two-sample 0.88 (Welch a little less); floors leave ~4 SE.
    _, directed, _ = _simulate(np.random.default_rng(54321), 2.0, paired, 500)
    assert directed > floor


def test_latest_ok_run_wins_and_failed_only_seeds_are_missing():
    results = pd.DataFrame({
        "variant": ["A", "A", "A", "A", "B"],
        "seed": [0, 0, 1, 2, 0],
        "status": ["failed", "ok", "failed", "ok", "ok"],
        "finished_at": [1.0, 2.0, 3.0, 4.0, 5.0],
        "test_auc_overall": [np.nan, 0.7, np.nan, 0.8, 0.75],
    })
    results = pd.concat([results, pd.DataFrame({"variant": ["A"], "seed": [2], "status": ["ok"],
                                                "finished_at": [0.5], "test_auc_overall": [0.1]})])
    runs = stats.latest_ok_runs(results, seeds=[0, 1, 2])
    a = stats.seed_scores(runs, "A", "test_auc_overall")
    assert a.to_dict() == {0: 0.7, 2: 0.8}  # seed 1 failed only; seed 2's later ok row wins
    with pytest.raises(ValueError, match="finished_at"):
        stats.latest_ok_runs(results.drop(columns="finished_at"))


def test_stats_frame_holm_over_whole_table():
    rng = np.random.default_rng(0)
    rows = []
    for variant, shift in (("base", 0.0), ("better", 0.004), ("same", 0.0)):
        for seed in range(6):
            noise = rng.normal(0, 5e-4, 2)
            rows.append(dict(variant=variant, seed=seed, test_auc_overall=0.78 + shift + noise[0],
                             test_gauc_overall=0.66 + shift + noise[1]))
    runs = pd.DataFrame(rows)
    frame = stats.stats_frame(runs, [ComparisonSpec("better", "base"), ComparisonSpec("same", "base")],
                              ["auc", "gauc"], ["overall"], table="table5", expected_n=6)
    assert list(frame.columns) == list(stats.STATS_COLUMNS)
    assert len(frame) == 4
    np.testing.assert_allclose(frame["p_adjusted"], multipletests(frame["p_value"], method="holm")[1])
    assert frame.set_index(["variant", "metric"])["significant"].to_dict() == {
        ("better", "auc"): True, ("better", "gauc"): True, ("same", "auc"): False, ("same", "gauc"): False}
    assert set(frame["test"]) == {stats.PAIRED}


def test_compare_rejects_duplicate_seeds():
    with pytest.raises(ValueError, match="duplicate seeds"):
        stats.compare(pd.Series([0.1, 0.2], index=[0, 0]), series(Y))
