"""The report page: order, greyed degenerate cells, search layout (see conftest.py for the sweeps)."""
import re

import pandas as pd

from sweeper import report


def section_order(page: str) -> list[str]:
    return re.findall(r'<section id="([a-z]+)"', page)


def test_rows_report_reads_top_down_with_metadata_last(make_sweep):
    page = (report.write_report(make_sweep("rows")) / "report.html").read_text()
    body = page.split("<body>", 1)[1]
    # The claims right after the answer; a sweep without diagnostics still gets the mechanism section, saying why.
    assert section_order(body) == ["verdicts", "claims", "plots", "mechanism", "published", "missing", "stats",
                                   "notes", "metadata"]
    first_table = body.index('class="table"')
    assert body.index('id="verdicts"') < body.index('id="claims"') < first_table < body.index('id="plots"')
    assert body.index("<details><summary>All comparisons: stats.csv") > body.index('id="published"')
    assert '<meta name="viewport"' in page and "<div class=\"scroll\">" in body
    # Published numbers side by side: one row per variant, ours next to the paper's per metric x domain.
    published = body[body.index('id="published"'):body.index('id="missing"')]
    assert ">ours<" in published and ">paper<" in published and published.count(">Crocodile<") == 1


def test_a_constant_cell_is_greyed_with_its_reason(make_sweep):
    sweep_dir = make_sweep("rows")
    for file in (sweep_dir / "results").glob("*.parquet"):  # every run scores gAUC S6 = 1 (one user)
        frame = pd.read_parquet(file)
        frame.loc[frame["status"] == "ok", "test_gauc_S6"] = 1.0
        frame.to_parquet(file)
    out = report.write_report(sweep_dir)
    page = (out / "report.html").read_text()
    greyed = re.findall(r'<td id="T_table0_row(\d)_col(\d+)" class="[^"]*degenerate[^"]*" +title="([^"]*)"', page)
    assert len(greyed) == 3 and {col for _, col, _ in greyed} == {"12"}  # gAUC S6 of each variant
    assert all("gAUC S6 is 1 in every run of every variant" in reason for _, _, reason in greyed)
    markdown = (out / "table.md").read_text()
    assert "1.00000\u2020" in markdown and "\u2020 not testable: gAUC S6 is 1 in every run" in markdown


def test_search_report_ranks_by_parameters_and_has_no_empty_statistics(make_sweep):
    out = report.write_report(make_sweep("search"), top_k=3)
    best = pd.read_csv(out / "best_configs.csv")
    assert list(best.columns[:4]) == ["rank", "num_embeddings", "gating", "alpha"]  # parameters first
    assert best.columns[-1] == "variant"  # the trial id names a configuration last
    page = (out / "report.html").read_text()
    assert section_order(page) == ["verdicts", "optuna", "notes", "metadata"]  # no statistics section
    assert "Significance protocol" not in page
    optuna = page[page.index('id="optuna"'):]
    assert "Caution: only 8 completed trials (fewer than 20)" in optuna
    assert "over 8 completed trials (1 seed(s) each)" in optuna
    for title in ("Optimization history", "Parallel coordinates", "Slice"):
        assert f"Optuna: {title}" in optuna
    for name in ("optuna_history.png", "optuna_parallel.png", "optuna_slice.png"):
        assert (out / name).stat().st_size > 1000
