"""Paper-format tables: exact rendering of a fixed results frame, n on cells with missing seeds."""
import csv
import io

import numpy as np
import pandas as pd
import pytest

from sweeper import protocol, stats, tables
from sweeper.hypotheses import Hypothesis
from sweeper.stats import ComparisonSpec
from sweeper.tables import VariantSpec

COMPARISONS = [ComparisonSpec("new", "base")]
CLAIM = (Hypothesis("new", ("base",), ("auc",)),)
# By hand: overall differences .03, .035, .03 -> mean .031667, sd .002887, t = 19.0 on 2 df, p = 0.0028:
# the primary claim (a family of 1) holds, star. That opens the gate for S1 (secondary, a family of 1):
# differences .02, .03, .01 -> t = 3.46 on 2 df, p = 0.074: no star. Lift overall = 100 * .031667 = +3.17 pts.
RUNS = pd.DataFrame({
    "variant": ["base"] * 3 + ["new"] * 3,
    "seed": [0, 1, 2] * 2,
    "test_auc_S1": [0.70, 0.71, 0.72, 0.72, 0.74, 0.73],
    "test_auc_overall": [0.80, 0.81, 0.82, 0.83, 0.845, 0.85],
})

EXPECTED_MARKDOWN = """\
**demo**

| Variant | AUC S1 | AUC Overall | AUC lift (pts) |
|:---|---:|---:|---:|
| base | 0.71000 | 0.81000 | - |
| new | 0.73000 | 0.84167* | +3.17 |

Stars mark the verdict `better` vs the row's reference: Holm-adjusted p < 0.05 within the cell's family \
(tests per family: primary 1, secondary 1) and an improvement; per-domain cells are tested only for a variant \
whose primary hypotheses hold. Test used: paired t.

Lift (pts) = 100 * (mean - reference mean), overall domain, as the paper prints it; declared comparisons: new vs base.

Means over seeds (test split); (k/3) marks a cell with only k of the 3 declared seeds finished.
"""


def demo_table(runs, variants=("base", "new"), declared=CLAIM):
    summary = stats.summary_frame(runs, list(variants), ["auc"], ["S1", "overall"])
    frame = protocol.stats_frame(runs, COMPARISONS, ["auc"], ["S1", "overall"], table="demo", expected_n=3,
                                 declared=declared)
    return tables.rows_table(summary, frame, list(variants), COMPARISONS, ["auc"], ["S1", "overall"], 3, "demo")


def test_fixed_frame_renders_known_markdown():
    assert tables.to_markdown(demo_table(RUNS)) == EXPECTED_MARKDOWN


def test_missing_seed_shows_its_n_and_pairs_on_the_common_seeds():
    runs = RUNS[~((RUNS["variant"] == "new") & (RUNS["seed"] == 2))]
    table = demo_table(runs)
    # Mean over the seeds that finished; the lift over the 2 common seeds: 100 * (.8375 - .805) = +3.25 pts,
    # differences .03 and .035: t = 13 on 1 df, p = 0.049 < 0.05: still a star.
    assert table.rows[1] == ("new", "0.73000 (2/3)", "0.83750* (2/3)", "+3.25")
    assert table.rows[0] == ("base", "0.71000", "0.81000", "-")
    assert "Test used: paired t" in table.notes[0]


def test_constant_difference_is_not_starred():
    runs = RUNS.assign(test_auc_overall=[0.80, 0.81, 0.82, 0.83, 0.84, 0.85])  # +.03 on every seed: t = inf
    table = demo_table(runs)
    assert table.rows[1][2] == f"0.84000{tables.DEGENERATE}" and "1 cell(s) are not testable" in table.notes[1]
    (row, column, reason), = table.greyed  # greyed in the HTML, its reason on hover and in the notes
    assert (row, column) == (1, 2) and reason.startswith("not testable: constant difference")
    assert table.notes[-1].startswith(f"{tables.DEGENERATE} not testable: constant difference")


def test_without_hypotheses_the_overall_cell_is_ablation():
    table = demo_table(RUNS, declared=())
    assert table.rows[1][2] == "0.84167*" and "ablation 1, secondary 0" in table.notes[0]


def test_variant_without_any_result_shows_zero_n():
    table = demo_table(RUNS, variants=("base", "new", "ghost"))
    assert table.rows[2] == ("ghost", "n/a (0/3)", "n/a (0/3)", "")


def test_a_variant_without_an_overall_metric_shows_a_dash_there():
    summary = stats.summary_frame(RUNS, ["base", "new"], ["auc"], ["S1", "overall"])
    frame = protocol.stats_frame(RUNS, [], ["auc"], ["S1", "overall"], table="demo", expected_n=3)
    table = tables.rows_table(summary, frame, ["base", "new"], [], ["auc"], ["S1", "overall"], 3, "demo",
                              no_overall={"base"})
    assert table.rows[0] == ("base", "0.71000", "-", "-")
    assert table.rows[1] == ("new", "0.73000", "0.84167", "")


def test_format_value():
    assert tables.format_value(0.74123, 5, 6, significant=True, digits=4) == "0.7412* (5/6)"
    assert tables.format_value(0.74123, 6, 6) == "0.74123"
    assert tables.format_value(float("nan"), 0, 6) == "n/a (0/6)"


def test_csv_and_latex_rendering():
    table = demo_table(RUNS)
    parsed = list(csv.reader(io.StringIO(tables.to_csv(table))))
    assert parsed[0] == list(table.columns) and [tuple(r) for r in parsed[1:]] == list(table.rows)
    latex = tables.to_latex(table)
    assert r"new & 0.73000 & 0.84167$^{*}$ & +3.17 \\" in latex
    assert r"\toprule" in latex and r"\begin{tabular}{lrrr}" in latex
    assert "100 * (mean" in latex  # only a star right after a number is a superscript


def test_num_embeddings_layout():
    rows = []
    for m in (2, 3):
        for series, shift in (("PG", 0.0), ("Croc", 0.01)):
            for seed, noise in enumerate((0.0, 0.001, -0.001)):
                rows.append({"variant": f"{series} M={m}", "seed": seed,
                             "test_gauc_overall": 0.66 + shift + m * 0.001 + noise + (seed == 1) * shift / 10})
    runs = pd.DataFrame(rows)
    variants = [VariantSpec(f"{s} M={m}", {}, s, m) for m in (2, 3) for s in ("PG", "Croc")]
    comparisons = [ComparisonSpec(f"Croc M={m}", f"PG M={m}") for m in (2, 3)]
    names = [v.name for v in variants]
    summary = stats.summary_frame(runs, names, ["gauc"], ["overall"])
    frame = protocol.stats_frame(runs, comparisons, ["gauc"], ["overall"], table="t6", expected_n=3)
    table = tables.num_embeddings_table(summary, frame, variants, comparisons, ["gauc"], 3, "t6")
    assert table.columns == ("#Emb", "2", "3")
    assert [r[0] for r in table.rows] == ["PG gAUC", "Croc gAUC", "gAUC lift (pts)"]
    assert table.rows[0][1:] == ("0.66200", "0.66300")
    lift = 100 * (0.01 + 0.001 / 3)
    assert table.rows[2][1] == f"{lift:+.2f}"


def test_published_side_by_side():
    summary = pd.DataFrame({"variant": ["A"], "metric": ["auc"], "domain": ["overall"], "n": [6],
                            "mean": [0.79], "std": [0.001], "ci_low": [0.78], "ci_high": [0.80]})
    published = pd.DataFrame({"dataset": ["kuairand1k", "aliccp"], "table": ["table5", "table5"],
                              "method": ["MMoE base", "MMoE base"], "metric": ["auc", "auc"],
                              "domain": ["overall", "overall"], "value": [0.786, 0.619]})
    def side_by_side(dataset):
        return tables.published_comparison(summary, published, dataset, "table5", {"A": "MMoE base"}, ["A"],
                                           ["auc"], ["S1", "overall"])
    matched = side_by_side("aliccp")
    assert matched["published (AliCCP)"].tolist() == [0.619]  # S1 is not in the paper's table: no row
    assert matched["ours - published"].tolist() == pytest.approx([0.79 - 0.619])
    synthetic = side_by_side(None)
    label = "published (KuaiRand-1K, reference only — different data)"
    assert synthetic[label].tolist() == [0.786] and "ours - published" not in synthetic.columns


def test_rank_configurations():
    runs = pd.DataFrame({"variant": ["a", "a", "b", "c"], "seed": [0, 1, 0, 0],
                         "val_auc_overall": [0.70, 0.72, 0.75, np.nan], "alpha": [1e-3, 1e-3, 1e-4, 1e-2],
                         "gating": ["pg"] * 4, "test_auc_overall": [0.69, 0.71, 0.74, np.nan]})
    best = tables.rank_configurations(runs, "val_auc_overall", "maximize", 2, ("alpha", "gating"))
    assert best["variant"].tolist() == ["b", "a"] and best["rank"].tolist() == [1, 2]
    assert "alpha" in best.columns and "gating" not in best.columns  # only factors that vary
    assert best["val_auc_overall mean"].tolist() == pytest.approx([0.75, 0.71])
    lowest = tables.rank_configurations(runs, "val_auc_overall", "minimize", 5, ("alpha",))
    assert lowest["variant"].tolist() == ["a", "b", "c"]  # no objective: last
    with pytest.raises(ValueError, match="val_gauc_S9"):
        tables.rank_configurations(runs, "val_gauc_S9", "maximize", 2, ())
