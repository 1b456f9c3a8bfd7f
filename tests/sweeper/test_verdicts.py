"""Verdict rules, sentences, the Bayes-gap statement and the paper's lifts, on hand-made rows."""
import math

import numpy as np
import pandas as pd
import pytest

from sweeper import verdicts
from sweeper.hypotheses import Hypothesis


def test_decide():
    assert verdicts.decide(0.01, 0.002, "auc", "paired t") == "better"
    assert verdicts.decide(0.01, -0.002, "gauc", "paired t") == "worse"  # significantly worse is no star
    assert verdicts.decide(0.01, -0.002, "logloss", "paired t") == "better"  # lower logloss is better
    assert verdicts.decide(0.05, 0.002, "auc", "paired t") == "not shown"  # p must be below 0.05
    assert verdicts.decide(math.nan, 0.002, "auc", "paired t") == "not testable"
    assert verdicts.decide(0.01, 0.002, "auc", "not testable: zero variance in both arms") == "not testable"
    assert verdicts.decide_intersection_union(0.049) == "better"
    assert verdicts.decide_intersection_union(0.05) == "not shown"
    assert verdicts.decide_intersection_union(math.nan) == "not testable"


def test_decide_many_agrees_with_decide():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.1, 500)
    p[::17] = np.nan
    delta = rng.normal(0, 1, 500)
    for higher, metric in ((True, "auc"), (False, "logloss")):
        many = verdicts.decide_many(p, delta, higher)
        assert many.tolist() == [verdicts.decide(a, d, metric, "paired t") for a, d in zip(p, delta)]


def row(**changes):
    base = dict(variant="Crocodile", reference="MMoE", metric="gauc", domain="overall", delta=0.0032,
                ci_low=0.0011, ci_high=0.0053, test="paired t", n=10, p_adjusted=0.004, verdict="better",
                family_size=2, mde=0.0021, mde_alpha=0.025, seeds_needed=6, published_lift=math.nan,
                seeds_for_published=math.nan, dropped_seeds="", n_tests=1, weakest="")
    return {**base, **changes}


def test_lines_in_the_issue_format():
    assert verdicts.verdict_line(row()) == ("Crocodile vs MMoE, overall gAUC: +0.32 pts (95 % CI +0.11..+0.53), "
                                            "paired t on 10 seeds, Holm p = 0.004: better.")
    assert verdicts.verdict_line(row(delta=0.0005, ci_low=-0.0016, ci_high=0.0026, p_adjusted=0.52,
                                     verdict="not shown", seeds_needed=38)) == (
        "Crocodile vs MMoE, overall gAUC: not shown: observed +0.05 pts (95 % CI -0.16..+0.26); paired t on 10 "
        "seeds, Holm p = 0.52; this sweep could detect >= 0.21 pts; about 38 seeds needed for +0.05 pts.")
    worse = verdicts.verdict_line(row(delta=-0.0032, ci_low=-0.0053, ci_high=-0.0011, verdict="worse",
                                      family_size=1, domain="S6", metric="auc"))
    assert worse == ("Crocodile vs MMoE, domain S6 AUC: -0.32 pts (95 % CI -0.53..-0.11), paired t on 10 seeds, "
                     "p = 0.004: worse.")


def test_not_shown_in_the_wrong_direction_and_published_lift():
    line = verdicts.verdict_line(row(delta=-0.0005, ci_low=-0.002, ci_high=0.001, p_adjusted=0.6,
                                     verdict="not shown", seeds_needed=math.nan, published_lift=0.00316,
                                     seeds_for_published=12, dropped_seeds="5 (no Crocodile result)"),
                                 "KuaiRand-1K, a different dataset")
    assert line == ("Crocodile vs MMoE, overall gAUC: not shown: observed -0.05 pts (95 % CI -0.20..+0.10), not "
                    "an improvement; paired t on 10 seeds (dropped seeds: 5 (no Crocodile result)), Holm p = 0.6; "
                    "this sweep could detect >= 0.21 pts. The paper's published +0.32 pts (KuaiRand-1K, a "
                    "different dataset) would need about 12 seeds at this sweep's spread.")
    hopeless = verdicts.verdict_line(row(verdict="not shown", p_adjusted=0.5, seeds_needed=math.inf))
    assert "about more than 100,000 seeds needed" in hopeless


def test_not_testable_line():
    line = verdicts.verdict_line(row(test="not testable: fewer than 2 common seeds (1)", verdict="not testable"))
    assert line == "Crocodile vs MMoE, overall gAUC: not testable: fewer than 2 common seeds (1)."


def test_verdict_frame_columns():
    frame = pd.DataFrame([{**row(), "hypothesis": "H1 gauc", "lift_pts": 0.32, "sd_diff": 0.002,
                           "alternative": "two-sided"}])
    out = verdicts.verdict_frame(frame, (Hypothesis("Crocodile", ("MMoE",), ("gauc",)),),
                                 {("Crocodile", "MMoE", "gauc", "overall"): 0.00316}, verdicts.UNDERTRAINED)
    assert list(out.columns) == [*verdicts.VERDICT_COLUMNS, *verdicts.EXTRA_COLUMNS]
    assert out["verdict"].tolist() == ["better"] and out["undertrained"].tolist() == [True]
    assert out["data_limited"].tolist() == [False]
    assert out["seeds_for_published"][0] >= 2 and out["published_lift"][0] == 0.00316


def gap_runs(auc, bayes, best_epoch=(3, 3, 3, 3)):
    """A and B, seeds 0-1, 5 epochs allowed; each run's best epoch as given (5 = the last allowed)."""
    return pd.DataFrame({"variant": ["A", "A", "B", "B"], "seed": [0, 1, 0, 1], "test_auc_overall": auc,
                         "test_bayesauc_overall": bayes, "best_epoch": list(best_epoch), "epochs_run": 5,
                         "epochs": 5})


def test_bayes_gap_and_the_training_quality_flags():
    # A: (0.74 - 0.5) / (0.8 - 0.5) = 0.8; B: (0.785 - 0.5) / 0.3 = 0.95 -> the best is above 90 %: fine.
    gap = verdicts.bayes_gap(gap_runs([0.73, 0.75, 0.78, 0.79], [0.8] * 4), ["A", "B"])
    assert gap["fraction"].tolist() == pytest.approx([0.8, 0.95])
    assert verdicts.training_quality(gap) == verdicts.TRAINED
    assert verdicts.bayes_line(gap).endswith("best 95.0 % (B), needed >= 90 %: trained close enough to the truth "
                                             "to compare.")
    # Below 90 %, every run peaked at epoch 3 of 5: converged short of the truth.
    low = verdicts.bayes_gap(gap_runs([0.73, 0.75, 0.74, 0.76], [0.8] * 4), ["A", "B"])
    assert verdicts.training_quality(low) == verdicts.DATA_LIMITED
    line = verdicts.bayes_line(low)
    assert line.startswith("Training quality: overall test AUC as a fraction of the Bayes gap, (auc - 0.5) / "
                           "(bayes - 0.5): A 80.0 %, B 83.3 %")
    assert line.endswith("best 83.3 % (B), needed >= 90 %: data-limited: converged short of the truth (4 of 4 runs "
                         "peaked before their last allowed epoch, so more epochs will not close the gap (more data "
                         "may); the table compares models converged on this much data).")
    # One of B's two runs still improving is not a majority; both of them are.
    half = verdicts.bayes_gap(gap_runs([0.73, 0.75, 0.74, 0.76], [0.8] * 4, (3, 3, 5, 3)), ["A", "B"])
    assert half["still_improving"].tolist() == [0, 1] and verdicts.training_quality(half) == verdicts.DATA_LIMITED
    behind = verdicts.bayes_gap(gap_runs([0.73, 0.75, 0.74, 0.76], [0.8] * 4, (3, 3, 5, 5)), ["A", "B"])
    assert verdicts.training_quality(behind) == verdicts.UNDERTRAINED
    assert verdicts.bayes_line(behind).endswith(
        "best 83.3 % (B), needed >= 90 %: undertrained: conclusions unreliable (runs still improving at their last "
        "allowed epoch: B 2 of 2; more epochs would change the numbers).")
    # A run stopped early (epochs_run < epochs) at its best epoch is not still improving; without the epoch
    # columns (older sweeps) nothing shows convergence, so the stronger flag stands.
    stopped = gap_runs([0.73, 0.75, 0.74, 0.76], [0.8] * 4, (4, 4, 4, 4)).assign(epochs_run=4)
    assert verdicts.training_quality(verdicts.bayes_gap(stopped, ["A", "B"])) == verdicts.DATA_LIMITED
    unknown = verdicts.bayes_gap(gap_runs([0.73, 0.75, 0.74, 0.76], [0.8] * 4).drop(columns="epochs"), ["A", "B"])
    assert unknown["still_improving"].isna().all() and verdicts.training_quality(unknown) == verdicts.UNDERTRAINED
    assert verdicts.bayes_line(unknown).endswith("needed >= 90 %: undertrained: conclusions unreliable.")
    just_below = verdicts.bayes_gap(gap_runs([0.7685] * 4, [0.8] * 4), ["A", "B"])  # 89.5 %: not "90 %"
    assert verdicts.training_quality(just_below) != verdicts.TRAINED
    assert "best 89.5 % (A)" in verdicts.bayes_line(just_below)
    assert verdicts.bayes_gap(gap_runs([0.7] * 4, [0.8] * 4).drop(columns="test_bayesauc_overall"), ["A"]) is None


def test_headline_without_claims():
    empty = pd.DataFrame(columns=[*verdicts.VERDICT_COLUMNS, *verdicts.EXTRA_COLUMNS])
    assert verdicts.headline(empty, None, "search", 0)[0].startswith("No verdict: a search is exploratory")
    assert verdicts.headline(empty, None, "replicate", 0)[0].startswith("No verdict: the space file declares no "
                                                                         "hypotheses")


def test_published_lifts():
    published = pd.DataFrame({"dataset": ["kuairand1k"] * 2, "table": ["table5"] * 2, "method": ["croc", "mmoe"],
                              "metric": ["gauc"] * 2, "domain": ["overall"] * 2, "value": [0.66373, 0.66057]})
    cell = ("Crocodile", "MMoE", "gauc", "overall")
    lifts, source = verdicts.published_lifts(published, None, "table5", {"Crocodile": "croc", "MMoE": "mmoe"}, [cell])
    assert lifts == {cell: pytest.approx(0.00316)} and source == "KuaiRand-1K, a different dataset"
    lifts, source = verdicts.published_lifts(published, "kuairand1k", "table5", {"Crocodile": "croc"}, [cell])
    assert lifts == {} and source == "KuaiRand-1K"
