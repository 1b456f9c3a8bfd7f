"""One comparison against scipy/statsmodels, by hand, and by simulation (families: test_protocol.py)."""
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower, TTestPower

from sweeper import stats

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
    assert result.lift_pts == pytest.approx(100 * (X.mean() - Y.mean()))
    assert result.lift_rel_pct == pytest.approx(100 * (X.mean() - Y.mean()) / Y.mean())
    assert result.pair_corr == pytest.approx(np.corrcoef(X, Y)[0, 1])
    assert result.sd_diff == pytest.approx(diff.std(ddof=1))
    assert (result.n, result.variant_n, result.ref_n, result.dropped_seeds) == (6, 6, 6, "")


def test_lift_is_in_points_as_the_paper_prints_it():
    # Crocodile's published gAUC lift over MMoE on KuaiRand-1K: 0.66373 - 0.66057 = +0.32 pts (the paper: 0.32 %).
    assert stats.lift_pts(0.66373, 0.66057) == pytest.approx(0.316)
    assert stats.lift_rel_pct(0.66373, 0.66057) == pytest.approx(0.478, abs=1e-3)


@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_one_sided_matches_scipy(alternative):
    result = stats.compare(series(X), series(Y), alternative=alternative)
    assert result.p_value == pytest.approx(scipy.stats.ttest_rel(X, Y, alternative=alternative).pvalue, rel=1e-12)
    assert result.alternative == alternative
    welch = stats.compare(series(X[:5]), series(Y), seed_test="welch", alternative=alternative)
    assert welch.p_value == pytest.approx(
        scipy.stats.ttest_ind(X[:5], Y, equal_var=False, alternative=alternative).pvalue, rel=1e-10)


def test_pairing_is_by_seed_not_by_position():
    shuffled = series(Y[::-1], seeds=range(5, -1, -1))  # same seed -> same value, listed backwards
    assert stats.compare(series(X), shuffled).p_value == pytest.approx(scipy.stats.ttest_rel(X, Y).pvalue)


def test_pairs_on_the_common_seeds_and_names_the_dropped_ones():
    x = series(X[:5])  # seed 5 failed for the variant
    y = series(np.append(Y[1:], 0.7), seeds=[1, 2, 3, 4, 5, 9])  # the reference lacks seed 0, has seed 9
    result = stats.compare(x, y)
    common_x, common_y = X[1:5], Y[1:5]
    assert result.test == stats.PAIRED and result.n == 4 and (result.variant_n, result.ref_n) == (5, 6)
    assert result.p_value == pytest.approx(scipy.stats.ttest_rel(common_x, common_y).pvalue, rel=1e-12)
    assert result.delta == pytest.approx(common_x.mean() - common_y.mean())
    assert result.dropped_seeds == "0 (no reference result); 5, 9 (no variant result)"


def test_welch_on_request_matches_scipy():
    x = series(X[:5])
    result = stats.compare(x, series(Y), seed_test="welch")
    reference = scipy.stats.ttest_ind(X[:5], Y, equal_var=False)
    assert result.test == stats.WELCH
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(reference.confidence_interval(0.95)), rel=1e-10)
    assert (result.n, result.variant_n, result.ref_n) == (5, 5, 6)
    with pytest.raises(ValueError, match="seed_test must be one of \\['paired', 'welch'\\], got 'sign'"):
        stats.compare(x, series(Y), seed_test="sign")


@pytest.mark.parametrize("x, y, reason", [
    ([0.78], Y, "fewer than 2 common seeds (1)"),
    ([], Y, "fewer than 2 common seeds (0)"),
    ([1.0] * 6, [1.0] * 6, "metric constant (1 in every run of both arms; e.g. a gAUC resting on one user)"),
    ([0.7] * 6, [0.6] * 6, "zero variance in both arms"),
    (Y + 0.002, Y, "constant difference (+0.002 on every seed; t would be infinite)"),
    (X, X, "constant difference (+0 on every seed; t would be infinite)"),
])
def test_degenerate_cells_are_labelled_not_computed(x, y, reason):
    result = stats.compare(series(x), series(y))
    assert result.test == f"not testable: {reason}"
    assert not stats.is_testable(result.test)
    for value in (result.p_value, result.ci_low, result.ci_high, result.p_permutation, result.sd_diff):
        assert math.isnan(value)
    assert math.isnan(stats.mde(result, 0.05))


def test_welch_degenerate():
    result = stats.compare(series([0.78]), series(Y), seed_test="welch")
    assert result.test == "not testable: fewer than 2 seeds in an arm (1 and 6)"
    assert stats.compare(series([0.5, 0.5]), series([0.5, 0.5, 0.5]), seed_test="welch").test.startswith(
        "not testable: metric constant")


def test_nan_scores_count_as_missing_seeds():
    result = stats.compare(series([0.78, np.nan, 0.79]), series([0.77, 0.775, 0.772]))
    assert result.n == 2 and result.test == stats.PAIRED and result.dropped_seeds == "1 (no variant result)"


def test_hand_checkable_small_input():
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 3.4641 on 2 df
    result = stats.compare(series([2.0, 4.0, 6.0]), series([1.0, 2.0, 3.0]))
    assert result.delta == 2.0
    assert result.p_value == pytest.approx(2 * scipy.stats.t.sf(2 * math.sqrt(3), 2))
    half_width = scipy.stats.t.ppf(0.975, 2) / math.sqrt(3)
    assert (result.ci_low, result.ci_high) == pytest.approx((2 - half_width, 2 + half_width))
    # all 8 sign flips of (1, 2, 3): only +++ and --- reach |mean| >= 2, the floor of 3 seeds
    assert result.p_permutation == 2 / 8 == result.p_permutation_floor
    assert result.lift_pts == pytest.approx(200.0) and result.lift_rel_pct == pytest.approx(100.0)
    assert result.pair_corr == pytest.approx(1.0)


def test_permutation_floor():
    assert stats.permutation_floor(6) == pytest.approx(2 / 64)  # > 0.025: never a Holm star of 2 at 6 seeds
    assert stats.permutation_floor(6, 6) == pytest.approx(2 / 924)
    assert stats.permutation_floor(30) == pytest.approx(1 / (stats.MONTE_CARLO_ARRANGEMENTS + 1))


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


def test_hedges_g():
    x, y = X, Y
    pooled = math.sqrt((x.var(ddof=1) + y.var(ddof=1)) / 2)
    df = 10
    correction = math.gamma(df / 2) / (math.sqrt(df / 2) * math.gamma((df - 1) / 2))
    assert stats.hedges_g(x, y) == pytest.approx((x.mean() - y.mean()) / pooled * correction)
    assert correction == pytest.approx(1 - 3 / (4 * df - 1), abs=2e-3)  # the usual approximation


@pytest.mark.parametrize("alpha, alternative, sm_alternative", [
    (0.05, "two-sided", "two-sided"), (0.025, "two-sided", "two-sided"), (0.0125, "greater", "larger")])
def test_mde_at_the_alpha_used(alpha, alternative, sm_alternative):
    paired = stats.compare(series(X), series(Y), alternative=alternative)
    d = TTestPower().solve_power(effect_size=None, nobs=6, alpha=alpha, power=0.8, alternative=sm_alternative)
    assert stats.mde(paired, alpha) == pytest.approx(d * (X - Y).std(ddof=1))
    welch = stats.compare(series(X[:5]), series(Y), seed_test="welch", alternative=alternative)
    d_ind = TTestIndPower().solve_power(effect_size=None, nobs1=5, ratio=6 / 5, alpha=alpha, power=0.8,
                                        alternative=sm_alternative)
    pooled5 = math.sqrt((4 * X[:5].var(ddof=1) + 5 * Y.var(ddof=1)) / 9)
    assert stats.mde(welch, alpha) == pytest.approx(d_ind * pooled5)
    assert stats.mde(paired, alpha / 2) > stats.mde(paired, alpha)  # a stricter level needs a larger effect


@pytest.mark.parametrize("lift, sd, alpha, alternative", [
    (0.001, 0.001, 0.025, "two-sided"), (0.0005, 0.001, 0.05, "greater"), (0.003, 0.001, 0.05, "two-sided")])
def test_seeds_needed_is_the_smallest_n_with_the_power(lift, sd, alpha, alternative):
    n = stats.seeds_needed(lift, sd, alpha, alternative)
    sm = "two-sided" if alternative == "two-sided" else "larger"
    power = lambda k: TTestPower().power(effect_size=lift / sd, nobs=k, alpha=alpha, alternative=sm)  # noqa: E731
    assert power(n) >= 0.8 and (n == 2 or power(n - 1) < 0.8)
    assert stats.power_paired(n, lift, sd, alpha, alternative) == pytest.approx(power(n))
    welch = stats.seeds_needed(lift, sd, alpha, alternative, test=stats.WELCH)  # arms' SD = sd / sqrt 2
    ind = lambda k: TTestIndPower().power(effect_size=lift / (sd / math.sqrt(2)), nobs1=k, alpha=alpha,  # noqa: E731
                                          alternative=sm)
    assert ind(welch) >= 0.8 and (welch == 2 or ind(welch - 1) < 0.8)
    # Huge effects, where statsmodels' power returns NaN (d = 11): 3 seeds suffice.
    assert stats.seeds_needed(0.001, 9e-5, 0.025) == 3 and stats.power_paired(3, 0.001, 9e-5, 0.025) > 0.99
    assert stats.seeds_needed(1e-9, 1.0, 0.05) == math.inf
    assert math.isnan(stats.seeds_needed(0.001, math.nan, 0.05)) and math.isnan(stats.seeds_needed(0.0, 1.0, 0.05))


def test_holm_matches_statsmodels_and_keeps_nan():
    p = [0.01, 0.04, np.nan, 0.03, 0.2]
    expected = multipletests([0.01, 0.04, 0.03, 0.2], method="holm")[1]
    adjusted = stats.holm(p)
    assert math.isnan(adjusted[2])
    np.testing.assert_allclose(adjusted[[0, 1, 3, 4]], expected, rtol=1e-12)
    assert stats.holm([]).shape == (0,) and math.isnan(stats.holm([np.nan])[0])


def test_holm_many_row_by_row_equals_statsmodels():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, (200, 7))
    p[rng.uniform(size=p.shape) < 0.2] = np.nan
    p[5] = 0.01  # ties
    adjusted = stats.holm_many(p)
    for row, out in zip(p, adjusted):
        tested = np.isfinite(row)
        assert np.isnan(out[~tested]).all()
        if tested.any():
            np.testing.assert_allclose(out[tested], multipletests(row[tested], method="holm")[1], rtol=1e-12)
    assert stats.holm_first_alpha(2) == 0.025 and stats.holm_first_alpha(0) == 0.05


def _simulate(rng, delta, paired, reps):
    """Fraction of reps where the comparison's test rejects at 0.05 and, separately, in the claimed direction."""
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
            result = stats.compare(series(x, seeds), series(y, range(10, 16)), seed_test="welch")
        rejected += result.p_value < 0.05
        improved += result.p_value < 0.05 and result.delta > 0
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


@pytest.mark.parametrize("paired, floor", [(True, 0.9), (False, 0.75)])
def test_planted_two_sd_difference_is_detected(paired, floor):
    # Power at n = 6, d = 2: paired 0.97, two-sample 0.88 (Welch a little less); floors leave ~4 SE.
    _, directed, _ = _simulate(np.random.default_rng(54321), 2.0, paired, 500)
    assert directed > floor


def test_disjoint_seed_sets_are_not_testable_when_paired():
    result = stats.compare(series(X), series(Y, range(10, 16)))
    assert result.test == "not testable: fewer than 2 common seeds (0)"
    assert result.dropped_seeds == "0, 1, 2, 3, 4, 5 (no reference result); 10, 11, 12, 13, 14, 15 (no variant result)"


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


def test_compare_rejects_duplicate_seeds():
    with pytest.raises(ValueError, match="duplicate seeds"):
        stats.compare(pd.Series([0.1, 0.2], index=[0, 0]), series(Y))
