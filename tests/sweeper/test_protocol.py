"""Families, Holm within each, gatekeeping, intersection-union; and the protocol's calibration by simulation."""
import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from statsmodels.stats.multitest import multipletests

from sweeper import power, protocol, stats, verdicts
from sweeper.hypotheses import INTERSECTION_UNION, Hypothesis
from sweeper.stats import ComparisonSpec

TABLE5 = ["MMoE", "ME-MMoE", "ME-MMoE-PG", "ME-MMoE-PG+Cov", "ME-MMoE-PEG", "Crocodile"]
TABLE5_COMPARISONS = [ComparisonSpec(v, "MMoE") for v in TABLE5[1:]]
TABLE5_CLAIM = (Hypothesis("Crocodile", ("MMoE",), ("auc", "gauc")),)
DOMAINS = ["S0", "S1", "overall"]


def runs_frame(shifts: dict, seeds=range(6), domains=DOMAINS, noise=5e-4, seed=0) -> pd.DataFrame:
    """Scores = 0.78 + shift + a shared seed effect + independent run noise, per metric and domain."""
    rng = np.random.default_rng(seed)
    seed_effect = {s: rng.normal(0, 1e-3) for s in seeds}
    rows = []
    for variant, shift in shifts.items():
        for s in seeds:
            row = {"variant": variant, "seed": s}
            for metric in ("auc", "gauc"):
                for domain in domains:
                    row[f"test_{metric}_{domain}"] = 0.78 + shift + seed_effect[s] + rng.normal(0, noise)
            rows.append(row)
    return pd.DataFrame(rows)


def table5_frame(runs, declared=TABLE5_CLAIM, domains=DOMAINS):
    return protocol.stats_frame(runs, TABLE5_COMPARISONS, ["auc", "gauc"], domains, table="table5",
                                expected_n=6, declared=declared)


def test_families_and_holm_within_each():
    shifts = {v: 0.0 for v in TABLE5} | {"Crocodile": 0.004, "ME-MMoE-PEG": 0.003}
    runs = runs_frame(shifts, seed=2)  # (seeds 0 and 1 happen to give ME-MMoE a false ablation verdict)
    frame = table5_frame(runs)
    assert list(frame.columns) == list(protocol.STATS_COLUMNS)
    assert len(frame) == 5 * 2 * 3
    families = frame.groupby("family").size().to_dict()
    assert families == {"primary": 2, "ablation": 8, "secondary": 20}
    for family, size in (("primary", 2), ("ablation", 8)):
        rows = frame[frame["family"] == family]
        assert set(rows["family_size"]) == {size}
        np.testing.assert_allclose(rows["p_adjusted"], multipletests(rows["p_value"], method="holm")[1], rtol=1e-12)
    primary = frame[frame["family"] == "primary"]
    assert primary["hypothesis"].tolist() == ["H1 auc", "H1 gauc"] and set(primary["verdict"]) == {"better"}
    ablation = frame[frame["family"] == "ablation"].set_index(["variant", "metric"])["verdict"]
    assert ablation["ME-MMoE-PEG"].tolist() == ["better", "better"]
    assert set(ablation.drop("ME-MMoE-PEG", level="variant")) == {"not shown"}
    # The gate: only Crocodile's claim holds, so only its per-domain cells are tested (Holm over those 4).
    secondary = frame[frame["family"] == "secondary"]
    tested = secondary[secondary["p_value"].notna()]
    assert set(tested["variant"]) == {"Crocodile"} and set(secondary["family_size"]) == {4}
    np.testing.assert_allclose(tested["p_adjusted"], multipletests(tested["p_value"], method="holm")[1], rtol=1e-12)
    closed = secondary[secondary["variant"] == "ME-MMoE-PEG"]
    assert closed["test"].str.startswith("CI only (no primary hypothesis for ME-MMoE-PEG; paired t would be used)"
                                         ).all()
    assert closed["p_adjusted"].isna().all() and closed["ci_low"].notna().all() and not closed["significant"].any()
    # MDE at Holm's first step for the cell's family, nowhere else.
    assert set(primary["mde_alpha"]) == {0.025} and set(tested["mde_alpha"]) == {0.05 / 4}
    assert closed["mde"].isna().all()
    row = primary.iloc[0]
    diff = stats.compare(stats.seed_scores(runs, "Crocodile", "test_auc_overall"),
                         stats.seed_scores(runs, "MMoE", "test_auc_overall"))
    assert row["mde"] == pytest.approx(stats.mde(diff, 0.025))


def test_gate_stays_closed_when_the_claim_fails():
    frame = table5_frame(runs_frame({v: 0.0 for v in TABLE5}))
    assert set(frame.loc[frame["family"] == "primary", "verdict"]) == {"not shown"}
    crocodile = frame[(frame["variant"] == "Crocodile") & (frame["family"] == "secondary")]
    assert crocodile["test"].str.startswith("CI only (primary hypotheses of Crocodile not all better").all()
    assert set(crocodile["verdict"]) == {protocol.CI_ONLY}


def test_no_hypotheses_means_no_primary_family():
    frame = table5_frame(runs_frame({v: 0.0 for v in TABLE5}), declared=())
    assert "primary" not in set(frame["family"]) and set(frame.loc[frame["domain"] == "overall", "family"]) == {
        "ablation"}
    assert frame.loc[frame["family"] == "secondary", "p_value"].isna().all()


def test_hypothesis_on_a_domain_and_on_an_undeclared_pair():
    runs = runs_frame({"MMoE": 0.0, "ME-MMoE": 0.0, "Crocodile": 0.004})
    declared = (Hypothesis("Crocodile", ("ME-MMoE",), ("gauc",), domain="S1"),)
    frame = protocol.stats_frame(runs, [ComparisonSpec("Crocodile", "MMoE")], ["auc", "gauc"], DOMAINS, "t", 6,
                                 declared=declared)
    pairs = list(dict.fromkeys(zip(frame["variant"], frame["reference"])))
    assert pairs == [("Crocodile", "MMoE"), ("Crocodile", "ME-MMoE")]
    primary = frame[frame["family"] == "primary"]
    assert primary[["reference", "metric", "domain"]].values.tolist() == [["ME-MMoE", "gauc", "S1"]]
    assert set(frame[(frame["reference"] == "ME-MMoE") & (frame["domain"] == "overall")]["family"]) == {"ablation"}


def test_identical_arms_with_identical_seeds_are_not_testable():
    runs = runs_frame({"MMoE": 0.0})
    runs = pd.concat([runs, runs.assign(variant="Crocodile")], ignore_index=True)  # every difference exactly 0
    comparisons = [ComparisonSpec("Crocodile", "MMoE")]
    frame = protocol.stats_frame(runs, comparisons, ["auc", "gauc"], DOMAINS, "t5", 6, declared=TABLE5_CLAIM)
    assert not frame["significant"].any()
    assert frame["p_value"].isna().all() and frame["mde"].isna().all() and frame["ci_low"].isna().all()
    assert set(frame["test"]) == {"not testable: constant difference (+0 on every seed; t would be infinite)"}
    rows = verdicts.verdict_frame(frame, TABLE5_CLAIM)
    assert set(rows["verdict"]) == {"not testable"}
    assert rows["line"][0] == ("Crocodile vs MMoE, overall AUC: not testable: constant difference (+0 on every "
                               "seed; t would be infinite).")


def test_constant_metric_is_labelled():
    runs = runs_frame({"MMoE": 0.0, "Crocodile": 0.003})
    runs["test_gauc_S1"] = 1.0  # a gAUC resting on one user
    frame = protocol.stats_frame(runs, [ComparisonSpec("Crocodile", "MMoE")], ["auc", "gauc"], DOMAINS, "t", 6,
                                 declared=TABLE5_CLAIM)
    cell = frame[(frame["metric"] == "gauc") & (frame["domain"] == "S1")].iloc[0]
    assert cell["test"].startswith("not testable: metric constant (1 in every run")
    assert math.isnan(cell["p_value"]) and cell["verdict"] == "not testable"
    assert set(frame.loc[frame["family"] == "secondary", "family_size"]) == {3}  # the 4th cell is not counted


def test_intersection_union_needs_every_pairwise_one_sided_test():
    runs = runs_frame({"A": 0.0, "B": 0.001, "C": 0.0005, "Crocodile": 0.003}, noise=2e-4)
    declared = (Hypothesis("Crocodile", ("A", "B", "C"), ("auc", "gauc"), test=INTERSECTION_UNION),)
    frame = protocol.stats_frame(runs, [], ["auc", "gauc"], ["overall"], "table2", 6, declared=declared)
    assert len(frame) == 6 and set(frame["family"]) == {"primary"} and set(frame["hypothesis"]) == {"H1"}
    assert set(frame["alternative"]) == {"greater"} and set(frame["family_size"]) == {1}
    for row in frame.itertuples():
        x = stats.seed_scores(runs, "Crocodile", f"test_{row.metric}_overall").to_numpy()
        y = stats.seed_scores(runs, row.reference, f"test_{row.metric}_overall").to_numpy()
        assert row.p_value == pytest.approx(scipy.stats.ttest_rel(x, y, alternative="greater").pvalue, rel=1e-10)
    # A family of one: no adjustment; the member's p is the largest pairwise p.
    assert set(frame["p_adjusted"]) == {frame["p_value"].max()} and frame["p_value"].max() < 0.05
    assert set(frame["verdict"]) == {"better"} and frame["significant"].all()
    assert set(frame["mde_alpha"]) == {0.05}
    row = verdicts.verdict_frame(frame, declared).iloc[0]
    assert (row["reference"], row["metric"], row["verdict"], row["n"]) == ("A, B, C", "auc+gauc", "better", 6)
    assert row["test"] == "intersection-union of 6 one-sided paired t"
    assert row["line"].startswith("Crocodile vs every one of A, B, C, overall AUC and gAUC: weakest pair vs B ")
    assert "each at 0.05 and all must pass, largest p = " in row["line"] and row["line"].endswith(": better.")

    # One pair that does not clearly lose is enough to withhold `better`: Crocodile = B + noise.
    tie = runs_frame({"A": 0.0, "B": 0.003, "C": 0.0005, "Crocodile": 0.003}, noise=2e-4)
    frame = protocol.stats_frame(tie, [], ["auc", "gauc"], ["overall"], "table2", 6, declared=declared)
    assert set(frame["verdict"]) == {"not shown"} and not frame["significant"].any()
    assert (frame.loc[frame["reference"] == "A", "p_value"] < 0.05).all()  # the others alone would pass
    # An untestable pair makes the whole claim untestable.
    same = pd.concat([tie[tie["variant"] != "Crocodile"], tie[tie["variant"] == "B"].assign(variant="Crocodile")])
    frame = protocol.stats_frame(same, [], ["auc", "gauc"], ["overall"], "table2", 6, declared=declared)
    assert set(frame["verdict"]) == {"not testable"}
    line = verdicts.verdict_frame(frame, declared)["line"][0]
    assert line.startswith("Crocodile vs every one of A, B, C, overall AUC and gAUC: not testable (vs B AUC): "
                           "constant difference")


def test_intersection_union_with_another_primary_member_is_holm_adjusted():
    runs = runs_frame({"A": 0.0, "B": 0.001, "Crocodile": 0.004}, noise=2e-4)
    declared = (Hypothesis("Crocodile", ("A", "B"), ("auc",), test=INTERSECTION_UNION),
                Hypothesis("B", ("A",), ("auc",)))
    frame = protocol.stats_frame(runs, [], ["auc"], ["overall"], "t", 6, declared=declared)
    primary = frame[frame["family"] == "primary"]
    member_p = [primary.loc[primary["hypothesis"] == "H1", "p_value"].max(),
                primary.loc[primary["hypothesis"] == "H2 auc", "p_value"].iloc[0]]
    expected = multipletests(member_p, method="holm")[1]
    assert primary.loc[primary["hypothesis"] == "H1", "p_adjusted"].tolist() == pytest.approx([expected[0]] * 2)
    assert primary.loc[primary["hypothesis"] == "H2 auc", "p_adjusted"].iloc[0] == pytest.approx(expected[1])
    assert set(primary["family_size"]) == {2}


def test_welch_on_request():
    runs = runs_frame({"MMoE": 0.0, "Crocodile": 0.004})
    frame = protocol.stats_frame(runs, [ComparisonSpec("Crocodile", "MMoE")], ["auc"], ["overall"], "t", 6,
                                 declared=(Hypothesis("Crocodile", ("MMoE",), ("auc",)),), seed_test="welch")
    assert frame["test"].tolist() == [stats.WELCH] and math.isnan(frame["pair_corr"][0])


# ---------------------------------------------------------------- calibration by simulation


def simulated_runs(scores: np.ndarray, table: int) -> pd.DataFrame:
    """One simulated table (power.simulate_table5's scores) in the results-store shape."""
    rows = []
    for v, name in enumerate(TABLE5):
        for seed in range(scores.shape[2]):
            rows.append({"variant": name, "seed": seed, "test_auc_overall": scores[table, v, seed, 0],
                         "test_gauc_overall": scores[table, v, seed, 1]})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("lift_sd", [0.0, 2.0])
def test_vectorised_simulation_is_the_report_protocol(lift_sd):
    """The calibration below runs the vectorised cores; on 25 tables they give the report's verdicts exactly."""
    run = power.simulate_table5(np.random.default_rng(99), 25, 6, lift_sd)
    for table in range(25):
        frame = table5_frame(simulated_runs(run["scores"], table), domains=["overall"])
        primary = verdicts.verdict_frame(frame, TABLE5_CLAIM)["verdict"].tolist()
        assert primary == run["primary"][table].tolist(), table
        ablation = frame[frame["family"] == "ablation"].sort_values(["metric", "variant"], key=lambda c: c.map(
            {**{v: i for i, v in enumerate(TABLE5)}, "auc": 0, "gauc": 1}))
        # simulate_table5 orders the ablation members variant-major: (ME-MMoE auc, ME-MMoE gauc, ...).
        expected = run["ablation"][table].reshape(4, 2).T.ravel().tolist()
        assert ablation["verdict"].tolist() == expected, table


@pytest.mark.parametrize("n, rho", [(6, 0.0), (10, 0.0), (6, 0.5)])
def test_aa_table5_primary_false_verdict_rate_is_at_most_five_percent(n, rho):
    result = power.simulate(n, lift_sd=0.0, rho=rho, reps=20_000, seed=2024)
    assert result.false_verdict <= 0.05  # `better` or `worse` on either member, null everywhere
    assert result.false_verdict >= 0.03  # and not far below it: the test is not conservative by accident
    assert result.ablation_false_verdict <= 0.05


def test_planted_two_sd_lift_at_six_seeds_is_found():
    result = power.simulate(6, lift_sd=2.0, rho=0.0, reps=20_000, seed=2025)
    assert result.better >= 0.60
    tighter = power.simulate(6, lift_sd=2.0, rho=0.5, reps=5_000, seed=2025)
    assert tighter.better > result.better  # pairing that correlates buys power


def test_permutation_floor_cannot_confirm_a_holm_star_at_six_seeds():
    runs = runs_frame({"MMoE": 0.0, "Crocodile": 0.01})
    frame = table5_frame(pd.concat([runs, runs_frame({v: 0.0 for v in TABLE5[1:-1]})]), domains=["overall"])
    primary = frame[frame["family"] == "primary"]
    assert (primary["p_permutation"] == 2 / 64).all() and (primary["p_permutation_floor"] == 2 / 64).all()
    assert (primary["p_permutation_floor"] > primary["mde_alpha"]).all()
