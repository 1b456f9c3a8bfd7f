"""The report's claims section and mechanism plots (conftest.py: diagnostics_sweep follows DIAG_CONTRACT)."""
import json

import pandas as pd

from sweeper import mechanism, paper_claims, report

MECHANISM_FILES = {"ia_epochs": mechanism.EPOCH_COLUMNS, "ia_frequency": mechanism.FREQUENCY_COLUMNS,
                   "spectrum_item_id_S6": mechanism.SPECTRUM_COLUMNS, "di_pairs": mechanism.DI_COLUMNS}


def test_a_sweep_with_diagnostics_gets_the_claims_and_the_four_plots(make_sweep):
    out = report.write_report(make_sweep("diagnostics"))
    for stem, columns in MECHANISM_FILES.items():
        assert (out / f"{stem}.png").stat().st_size > 5000, stem
        assert list(pd.read_csv(out / f"{stem}.csv").columns) == list(columns), stem
    claims = pd.read_csv(out / "paper_claims.csv").set_index("claim")
    assert list(claims.columns) == list(paper_claims.CLAIM_COLUMNS)[1:]
    # What the fake sweep was built to show (conftest.DIAG_VARIANTS): every claim gets a status from its numbers.
    assert claims["status"].to_dict() == {
        "table5_order_gauc": "reproduced", "table5_components": "reproduced", "table6": "reproduced",
        "tail_ia": "reproduced", "covloss_di": "not reproduced", "alpha_second_best": "reproduced",
        "covloss_sampling": "not reproduced"}
    assert "STEM - Crocodile: -3." in claims.loc["tail_ia", "evidence"]
    assert "paired t p = 0.016, Wilcoxon p = 0.051" in claims.loc["covloss_sampling", "evidence"]

    page = (out / "report.html").read_text()
    body = page.split("<body>", 1)[1]
    assert body.index('id="verdicts"') < body.index('id="claims"') < body.index('class="table"')
    claims_html = body[body.index('id="claims"'):body.index('class="table"')]
    assert claims_html.count("<li class='claim ") == 7 and "<li class='claim not-reproduced'>" in claims_html
    mechanism_html = body[body.index('id="mechanism"'):body.index('id="stats"')]
    assert mechanism_html.count('src="data:image/png;base64,') == 4
    assert "numbers: spectrum_item_id_S6.csv" in mechanism_html
    markdown = (out / "report.md").read_text()
    assert markdown.index("## Verdicts") < markdown.index("## The paper's claims on this sweep") < \
        markdown.index("## Table")
    assert "- **not reproduced**: Fig. 5b: CovLoss raises" in markdown and "`di_pairs.png`" in markdown


def test_without_per_epoch_entries_the_epoch_plot_says_how_to_get_it(make_sweep):
    sweep_dir = make_sweep("diagnostics-no-epochs")
    broken = sorted((sweep_dir / "diagnostics").glob("*.json"))[0]
    broken.write_text("{truncated")
    out = report.write_report(sweep_dir)
    assert not (out / "ia_epochs.png").exists() and (out / "di_pairs.png").is_file()
    markdown = (out / "report.md").read_text()
    assert "IA over epochs (Fig. 2a) not drawn" in markdown and "diagnostics_every=1" in markdown
    assert f"1 diagnostics artefact(s) could not be read and are left out: diagnostics/{broken.name} (not JSON" \
        in markdown


def test_an_old_sweep_without_diagnostics_still_renders(make_sweep):
    out = report.write_report(make_sweep("rows"))
    assert not any((out / f"{stem}.png").exists() for stem in MECHANISM_FILES)
    claims = pd.read_csv(out / "paper_claims.csv").set_index("claim")
    assert claims.loc["tail_ia", "status"] == "not testable here"
    assert claims.loc["covloss_sampling", "test"].startswith("the sweep has no covloss_sampling.json; produce it")
    page = (out / "report.html").read_text()
    assert 'id="claims"' in page and report.NO_DIAGNOSTICS.split(":")[0] in page
    assert report.NO_DIAGNOSTICS in (out / "report.md").read_text()


def test_read_artefacts_names_what_it_could_not_read(tmp_path):
    (tmp_path / "diagnostics").mkdir()
    (tmp_path / "diagnostics" / "a.json").write_text(json.dumps({"epochs": [], "spectra": {}}))
    (tmp_path / "diagnostics" / "b.json").write_text("[1, 2]")
    runs = pd.DataFrame({"variant": ["A", "A", "A", "B"], "seed": [0, 1, 2, 0],
                         "diagnostics_path": ["diagnostics/a.json", "diagnostics/b.json", "diagnostics/c.json", ""]})
    from sweeper.store import ResultsStore

    found, problems = mechanism.read_artefacts(ResultsStore(str(tmp_path)), runs)
    assert list(found) == [("A", 0)]
    assert problems == ["diagnostics/b.json (expected a JSON object, got list)", "diagnostics/c.json (not found)"]
    assert mechanism.read_artefacts(ResultsStore(str(tmp_path)), runs.drop(columns="diagnostics_path")) == ({}, [])
