"""The paper's claims on hand-made runs: each reproduced, not reproduced and not testable, numbers by hand.

Scores are built so that the paired differences are known: base = 0.660, 0.661, 0.662, 0.663 over
seeds 0..3; UP = base + (0.002, 0.003, 0.002, 0.003): mean difference 0.0025, SD of the differences
sqrt(1e-6 / 3) = 0.000577, t = 0.0025 / (0.000577 / 2) = 8.66 on 3 df, one-sided p = 0.0016.
FLAT = base + (0.001, -0.001, 0.002, -0.002): mean difference 0, t = 0, one-sided p = 0.5.
"""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from sweeper import paper_claims as pc
from sweeper.report import load_published
from sweeper.store import ResultsStore

SEEDS = [0, 1, 2, 3]
DOMAINS = ("S0", "S1", "S6", "overall")
BASE = np.array([0.660, 0.661, 0.662, 0.663])
UP = BASE + np.array([0.002, 0.003, 0.002, 0.003])
FLAT = BASE + np.array([0.001, -0.001, 0.002, -0.002])
DOWN = BASE - np.array([0.002, 0.003, 0.002, 0.003])
NOISE_A, NOISE_B = np.array([0, 1e-4, 0, 3e-4]), np.array([0, 2e-4, 1e-4, 0])  # mean 1e-4 and 0.75e-4
P_UP = float(scipy.stats.t.sf(0.0025 / (np.sqrt(1e-6 / 3) / 2), 3))

MOE = dict(architecture="crocodile", num_embeddings=5, aux_rows=1024, batch_size=4096, alpha=0.1)
CROCODILE = dict(MOE, embedding="ME", gating="peg", aux_loss="cov")
PEG = dict(CROCODILE, aux_loss="none")
PG = dict(MOE, embedding="ME", gating="pg", aux_loss="none")
PG_COV = dict(PG, aux_loss="cov")
MMOE = dict(MOE, embedding="SE", gating="standard", aux_loss="none")
ME_MMOE = dict(MMOE, embedding="ME")
STEM = dict(MOE, architecture="stem", embedding="ME", gating="standard", aux_loss="none")
ME_PLE = dict(STEM, architecture="ple")


def sweep(*variants, covloss=None, problem="") -> pc.Sweep:
    """variants: (name, config, {column: per-seed values}); one row per seed."""
    rows = [{"variant": name, "seed": seed, **config, **{c: float(v[i]) for c, v in columns.items()}}
            for name, config, columns in variants for i, seed in enumerate(SEEDS)]
    return pc.Sweep(pd.DataFrame(rows), tuple(v[0] for v in variants), DOMAINS, None, load_published(), covloss,
                    problem, "synthetic:small")


def gauc(values):
    return {"test_gauc_overall": values, "test_auc_overall": values + 0.12}


def test_defaults_are_model_config_defaults():
    from model.config import ModelConfig, TrainConfig

    defaults = {**dataclasses.asdict(ModelConfig()), **dataclasses.asdict(TrainConfig())}
    assert {k: defaults[k] for k in pc.DEFAULTS} == pc.DEFAULTS


# ---------------------------------------------------------------- Table 6


def table6_sweep(m3: np.ndarray, with_pg: bool = True) -> pc.Sweep:
    variants = []
    for m, crocodile in ((2, UP), (3, m3)):
        if with_pg:
            variants.append((f"PG M={m}", dict(PG, num_embeddings=m), gauc(BASE)))
        variants.append((f"Croc M={m}", dict(CROCODILE, num_embeddings=m), gauc(crocodile)))
    return sweep(*variants)


def test_table6_reproduced_at_every_m():
    claim = pc.table6(table6_sweep(UP))
    assert claim.status == pc.REPRODUCED
    assert claim.statement.endswith("(M = 2, 3 here)")
    assert "intersection-union of 2 one-sided paired t tests" in claim.test
    assert f"M=2: Croc M=2 - PG M=2: +0.250 pts (95 % CI" in claim.evidence
    assert f"p = {P_UP:.3g}, 4 seeds" in claim.evidence and f"{P_UP:.3g}" == "0.00162"


def test_table6_not_reproduced_when_one_m_shows_nothing():
    claim = pc.table6(table6_sweep(FLAT))
    assert claim.status == pc.NOT_REPRODUCED
    assert claim.test.endswith("failed: M=3: Croc M=3 - PG M=3")
    assert "M=3: Croc M=3 - PG M=3: +0.000 pts" in claim.evidence and "p = 0.5," in claim.evidence


def test_table6_not_testable_without_me_mmoe_pg():
    claim = pc.table6(table6_sweep(UP, with_pg=False))
    assert claim.status == pc.NOT_TESTABLE and claim.test == "the sweep has no ME-MMoE-PG"
    assert claim.line() == ("Table 6: Crocodile beats ME-MMoE-PG in overall gAUC at every M: not testable here: the "
                            "sweep has no ME-MMoE-PG.")


def test_a_degenerate_pair_makes_the_claim_not_testable():
    one_seed = table6_sweep(UP)
    one_seed = dataclasses.replace(one_seed, runs=one_seed.runs[one_seed.runs["seed"] == 0])
    claim = pc.table6(one_seed)
    assert claim.status == pc.NOT_TESTABLE and claim.test.endswith("fewer than 2 common seeds (1)")


# ---------------------------------------------------------------- Table 5


def test_table5_order_follows_the_published_gauc_levels():
    # KuaiRand-1K gAUC: MMoE .66057 < ME-MMoE .66188 < ME-MMoE-PG = ME-MMoE-PEG .66208 < Crocodile .66373.
    # (A constant difference would be untestable: every step's differences vary over the seeds.)
    rising = sweep(("MMoE", MMOE, gauc(BASE)), ("ME-MMoE", ME_MMOE, gauc(UP)), ("PG", PG, gauc(UP + 0.01 + NOISE_A)),
                   ("PEG", PEG, gauc(UP + 0.01 + NOISE_B)), ("Croc", CROCODILE, gauc(UP + 0.03 + NOISE_B[::-1])))
    claim = pc.table5_order(rising)
    assert "MMoE < ME-MMoE < PG = PEG < Croc (KuaiRand-1K's published values, a different dataset)" in claim.statement
    # Steps between levels only: PG vs PEG (a tie in the paper) is not ordered.
    assert claim.status == pc.REPRODUCED and "intersection-union of 5" in claim.test
    assert "PEG - PG" not in claim.evidence and "PG - PEG" not in claim.evidence
    assert "ME-MMoE - MMoE: +0.250 pts" in claim.evidence


def test_table5_order_not_reproduced_when_reversed():
    falling = sweep(("MMoE", MMOE, gauc(UP)), ("ME-MMoE", ME_MMOE, gauc(BASE)), ("Croc", CROCODILE, gauc(UP + 0.01)))
    claim = pc.table5_order(falling)
    assert claim.status == pc.NOT_REPRODUCED and claim.test.endswith("failed: ME-MMoE - MMoE")
    assert "ME-MMoE - MMoE: -0.250 pts" in claim.evidence
    assert "This sweep's order by mean: ME-MMoE < MMoE < Croc" in claim.evidence


def test_table5_not_testable_with_one_configuration():
    claim = pc.table5_order(sweep(("Croc", CROCODILE, gauc(UP))))
    assert claim.status == pc.NOT_TESTABLE and claim.test.startswith("the sweep has 1 of Table 5's 6 configurations")


def test_table5_components_crocodile_beats_every_ablation_in_auc_and_gauc():
    claim = pc.table5_components(sweep(("MMoE", MMOE, gauc(BASE)), ("Croc", CROCODILE, gauc(UP))))
    assert claim.status == pc.REPRODUCED and "intersection-union of 2" in claim.test
    assert "Croc - MMoE AUC: +0.250 pts" in claim.evidence and "Croc - MMoE gAUC: +0.250 pts" in claim.evidence
    alpha_zero = sweep(("alpha=0", dict(CROCODILE, alpha=0.0), gauc(BASE)), ("Croc", CROCODILE, gauc(UP)))
    assert pc.table5_components(alpha_zero).test.startswith("the sweep has no ablated Table 5 row")


def test_several_matches_take_m5():
    claim = pc.table5_components(sweep(("MMoE", MMOE, gauc(BASE)), ("Croc M=2", dict(CROCODILE, num_embeddings=2),
                                                                    gauc(FLAT)), ("Croc M=5", CROCODILE, gauc(UP))))
    assert claim.status == pc.REPRODUCED and "Croc M=5 taken of 2 matching variants (Croc M=2, Croc M=5)" in \
        claim.evidence


# ---------------------------------------------------------------- Fig. 4: tail-domain IA


def test_tail_ia_lower_for_domain_specific_embeddings():
    ia = {"ia_item_id_S6": 10 * BASE}  # 6.60 .. 6.63
    claim = pc.tail_ia(sweep(("Croc", CROCODILE, ia), ("STEM", STEM, {"ia_item_id_S6": 10 * DOWN}),
                             ("ME-PLE", ME_PLE, {"ia_item_id_S6": 10 * DOWN})))
    assert claim.status == pc.REPRODUCED
    assert claim.statement == "ME-PLE and STEM have a lower tail-domain (S6) item-id IA (ia_item_id_S6) than Croc"
    assert "STEM - Croc: -0.025 (95 % CI" in claim.evidence and "Tail domain: the tail domain is" in claim.evidence
    higher = pc.tail_ia(sweep(("Croc", CROCODILE, ia), ("STEM", STEM, {"ia_item_id_S6": 10 * UP})))
    assert higher.status == pc.NOT_REPRODUCED and "STEM - Croc: +0.025" in higher.evidence


def test_tail_ia_not_testable_without_the_methods_or_the_column():
    assert pc.tail_ia(sweep(("Croc", CROCODILE, gauc(UP)))).test == "the sweep has no ME-PLE or STEM"
    old = pc.tail_ia(sweep(("Croc", CROCODILE, gauc(UP)), ("STEM", STEM, gauc(BASE))))
    assert old.status == pc.NOT_TESTABLE and old.test.startswith("the sweep's rows have no ia_item_id_S6")


# ---------------------------------------------------------------- Fig. 5b: CovLoss raises DI


def test_covloss_raises_di_on_pairs_identical_but_for_the_aux_loss():
    runs = sweep(("PG", PG, {"di_mean": BASE - 0.5}), ("PG+Cov", PG_COV, {"di_mean": UP - 0.5}),
                 ("PG+Cov M=3", dict(PG_COV, num_embeddings=3), {"di_mean": DOWN - 0.5}))
    assert pc.covloss_pairs(runs) == [("PG+Cov", "PG")]  # M=3 has no partner without CovLoss
    claim = pc.covloss_di(runs)
    assert claim.status == pc.REPRODUCED and "PG+Cov - PG: +0.0025 (95 % CI" in claim.evidence
    lower = pc.covloss_di(sweep(("PG", PG, {"di_mean": BASE}), ("PG+Cov", PG_COV, {"di_mean": DOWN})))
    assert lower.status == pc.NOT_REPRODUCED


def test_covloss_di_not_testable_without_pairs_or_di():
    alpha = sweep(("alpha=0", dict(CROCODILE, alpha=0.0), {"di_mean": BASE}), ("alpha=0.1", CROCODILE, {"di_mean": UP}))
    assert pc.covloss_di(alpha).test.startswith("the sweep has no pair of variants identical except aux_loss")
    old = pc.covloss_di(sweep(("PG", PG, gauc(BASE)), ("PG+Cov", PG_COV, gauc(UP))))
    assert old.test.startswith("the sweep's rows have no di_mean")


# ---------------------------------------------------------------- Sec. 5.5: alpha


def test_alpha_threshold_is_the_papers_times_the_covloss_rows():
    assert pc.alpha_threshold(CROCODILE) == pytest.approx(2e-5 * 1024)
    assert pc.alpha_threshold(dict(CROCODILE, aux_rows=0)) == pytest.approx(2e-5 * 4096)  # 0 = the whole batch


def test_alpha_keeps_crocodile_second_best():
    second = sweep(("MMoE", MMOE, gauc(BASE)), ("STEM", STEM, gauc(UP + 0.01 + NOISE_A)),
                   ("alpha=0.1", CROCODILE, gauc(UP)),
                   ("alpha=0.01", dict(CROCODILE, alpha=0.01), gauc(DOWN)))  # 0.01 < 0.0205: not claimed
    claim = pc.alpha_second_best(second)
    assert claim.status == pc.REPRODUCED and "alpha=0.1 among MMoE, STEM" in claim.statement
    assert "alpha=0.1 gAUC: rank 2 of 3 (above it: STEM +1.010 pts, p = " in claim.evidence
    assert "alpha=0.01" not in claim.evidence
    third = sweep(("MMoE", MMOE, gauc(UP + 0.02)), ("STEM", STEM, gauc(UP + 0.01)), ("alpha=0.1", CROCODILE, gauc(UP)))
    assert pc.alpha_second_best(third).status == pc.NOT_REPRODUCED
    assert "worst rank 3" in pc.alpha_second_best(third).test


def test_alpha_not_testable_on_an_alpha_sweep_alone():
    alone = sweep(("alpha=0", dict(CROCODILE, alpha=0.0), gauc(BASE)), ("alpha=0.1", CROCODILE, gauc(UP)))
    assert pc.alpha_second_best(alone).test.startswith("the sweep has no method other than Crocodile")
    small = sweep(("MMoE", MMOE, gauc(BASE)), ("alpha=0.01", dict(CROCODILE, alpha=0.01), gauc(UP)))
    assert pc.alpha_second_best(small).test.startswith("the sweep has no Crocodile with alpha >= 0.0205")


# ---------------------------------------------------------------- Sec. 5.6: CovLoss on 32 rows

RECORD = {"data": "synthetic:small", "rows": [32, 1024], "epochs": 1, "p_threshold": 0.1, "n": 196,
          "mean_small": 0.0963, "mean_large": 0.1, "mean_diff": -0.0037, "ratio": 0.963, "t_p": 0.016,
          "wilcoxon_p": 0.051, "same": False}


def test_covloss_sampling_from_the_stored_record():
    claim = pc.covloss_sampling(sweep(covloss=RECORD))
    assert claim.status == pc.NOT_REPRODUCED
    assert "196 training steps of synthetic:small" in claim.evidence and "ratio 0.963" in claim.evidence
    assert "paired t p = 0.016, Wilcoxon p = 0.051" in claim.evidence
    assert pc.covloss_sampling(sweep(covloss={**RECORD, "t_p": 0.4, "wilcoxon_p": 0.5, "same": True})).status == \
        pc.REPRODUCED
    other_rows = pc.covloss_sampling(sweep(covloss={**RECORD, "rows": [16, 512]}))
    assert other_rows.status == pc.NOT_TESTABLE and "compares rows (16, 512)" in other_rows.test


def test_covloss_sampling_not_testable_names_the_command():
    claim = pc.covloss_sampling(sweep())
    assert claim.status == pc.NOT_TESTABLE
    assert claim.test == ("the sweep has no covloss_sampling.json; produce it with `python -m model.covloss_sampling "
                          "--data synthetic:small --json <sweep>/covloss_sampling.json`")


def test_read_covloss_round_trip(tmp_path):
    from model.covloss_sampling import compare_norms, comparison_record

    store = ResultsStore(str(tmp_path))
    assert pc.read_covloss(store) == (None, "")
    result = compare_norms([1.0, 1.1, 0.9, 1.2], [1.0, 1.0, 1.0, 1.1])
    store.write_text(pc.COVLOSS_FILE, json.dumps(comparison_record(result, (32, 1024), "synthetic:tiny", 1)))
    record, problem = pc.read_covloss(store)
    assert problem == "" and record["rows"] == [32, 1024] and record["t_p"] == pytest.approx(result.t_p)
    assert pc.covloss_sampling(sweep(covloss=record)).status in (pc.REPRODUCED, pc.NOT_REPRODUCED)
    store.write_text(pc.COVLOSS_FILE, "{not json")
    record, problem = pc.read_covloss(store)
    assert record is None and problem.startswith("covloss_sampling.json is not JSON")
    assert pc.covloss_sampling(sweep(covloss=record, problem=problem)).test.startswith(
        "covloss_sampling.json is not JSON")


def test_every_claim_has_a_status_on_an_empty_sweep():
    claims = pc.evaluate(sweep(("MMoE", MMOE, gauc(BASE))))
    frame = pc.claims_frame(claims)
    assert list(frame.columns) == list(pc.CLAIM_COLUMNS) and len(frame) == len(pc.CHECKS)
    assert set(frame["status"]) == {pc.NOT_TESTABLE}
