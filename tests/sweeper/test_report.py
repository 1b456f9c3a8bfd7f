"""write_report / python -m sweeper.report on hand-made sweep directories (see conftest.py)."""
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from sweeper import protocol, report, stats, verdicts, wandb_log

REPO = Path(__file__).resolve().parents[2]


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sources = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.sources.append(dict(attrs)["src"])


def image_sources(page: str) -> list[str]:
    parser = _Images()
    parser.feed(page)
    return parser.sources


def test_rows_layout_report(make_sweep):
    sweep_dir = make_sweep("rows")
    out = report.write_report(sweep_dir)
    assert out == sweep_dir / "report"
    for name in ("table.md", "table.csv", "table.tex", "stats.csv", "summary.csv", "deltas.png", "deltas.csv",
                 "published.csv", "missing_seeds.csv", "report.html"):
        assert (out / name).is_file(), name

    frame = pd.read_csv(out / "stats.csv", keep_default_na=False, na_values=[""])
    assert list(frame.columns) == list(protocol.STATS_COLUMNS)
    assert len(frame) == 2 * 2 * 6  # comparisons x metrics x (5 domains + overall)
    crocodile = frame[frame["variant"] == "Crocodile"]
    # Seed 5 failed: paired on the 5 common seeds, and said so.
    assert set(crocodile["n"]) == {5} and set(crocodile["test"]) == {stats.PAIRED}
    assert set(crocodile["dropped_seeds"]) == {"5 (no Crocodile result)"}
    assert crocodile.set_index("domain")["family"].to_dict() == {
        "S0": "secondary", "S1": "secondary", "S2": "secondary", "S4": "secondary", "S6": "secondary",
        "overall": "primary"}
    assert set(crocodile["verdict"]) == {"better"}  # the claim holds, so the per-domain cells are tested
    me = frame[frame["variant"] == "ME-MMoE"]
    assert set(me["n"]) == {6}  # seed 2 failed once, then ran ok
    assert set(me.loc[me["domain"] == "overall", "family"]) == {"ablation"}
    assert me.loc[me["domain"] != "overall", "test"].str.startswith("CI only (no primary hypothesis").all()
    assert frame.groupby("family")["family_size"].max().to_dict() == {"ablation": 2, "primary": 2, "secondary": 10}

    verdict_rows = pd.read_csv(out / "verdicts.csv")
    assert list(verdict_rows.columns[:11]) == list(verdicts.VERDICT_COLUMNS)
    assert verdict_rows[["variant", "reference", "metric", "domain", "n", "verdict"]].to_dict("records") == [
        {"variant": "Crocodile", "reference": "MMoE", "metric": m, "domain": "overall", "n": 5, "verdict": "better"}
        for m in ("auc", "gauc")]
    lines = (out / "verdicts.txt").read_text().splitlines()
    assert lines[0].startswith("Crocodile vs MMoE, overall AUC: +0.15 pts (95 % CI +0.14..+0.16), paired t on 5 "
                               "seeds (dropped seeds: 5 (no Crocodile result)), Holm p = ")
    assert lines[0].split(". The paper")[0].endswith(": better")
    assert "The paper's published +0.09 pts (KuaiRand-1K, a different dataset) would need about" in lines[0]
    markdown_report = (out / "report.md").read_text()
    assert markdown_report.startswith("# Sweep report: t5\n\n## Verdicts\n\n- Crocodile vs MMoE, overall AUC: ")

    markdown = (out / "table.md").read_text()
    assert "| Crocodile | 0.73749* (5/6) |" in markdown
    assert "(5/6)" not in markdown.split("| ME-MMoE |")[1].split("\n")[0]

    missing = pd.read_csv(out / "missing_seeds.csv")
    assert missing.to_dict("records") == [{"variant": "Crocodile", "seed": 5, "status": "failed",
                                           "error": "RuntimeError: out of memory"}]
    published = pd.read_csv(out / "published.csv")
    assert "published (KuaiRand-1K, reference only — different data)" in published.columns
    assert "ours - published" not in published.columns

    page = (out / "report.html").read_text()
    sources = image_sources(page)
    assert len(sources) == 1 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page  # readable offline
    assert "0.73749* (5/6)" in page and "RuntimeError: out of memory" in page
    body = page.split("<body>", 1)[1]
    assert body.index("<h2>Verdicts</h2>") < body.index("<table")  # the answer first
    assert "<li class='verdict better'>Crocodile vs MMoE, overall AUC: +0.15 pts" in body
    # ME-MMoE's per-domain cells: CI only, greyed (the stats table's muted rows)
    assert len(re.findall(r'<td id="T_stats_row\d+_col0" class="[^"]*muted', body)) == 10


def test_a_single_domain_row_has_no_overall_cells(make_sweep):
    sweep_dir = make_sweep("rows")
    for path in (sweep_dir / "results").glob("*.parquet"):
        frame = pd.read_parquet(path)
        frame["architecture"] = ["single_domain" if v == "ME-MMoE" else "crocodile" for v in frame["variant"]]
        frame["test_bayesauc_overall"] = 0.85
        frame.to_parquet(path)
    out = report.write_report(sweep_dir)
    # Nor a share of the Bayes gap: its overall AUC ranks the scores of separate models.
    assert pd.read_csv(out / "bayes_gap.csv")["variant"].tolist() == ["MMoE", "Crocodile"]
    assert "ME-MMoE" not in (out / "verdicts.txt").read_text().splitlines()[-1]
    table = (out / "table.md").read_text()
    cells = next(line for line in table.splitlines() if line.startswith("| ME-MMoE |")).strip("| ").split(" | ")
    assert cells.count("-") == 4  # AUC and gAUC: overall and lift
    mmoe = next(line for line in table.splitlines() if line.startswith("| Crocodile |")).strip("| ").split(" | ")
    assert "-" not in mmoe


def test_alpha_layout_report(make_sweep):
    out = report.write_report(make_sweep("alpha"))
    curve = pd.read_csv(out / "alpha.csv")
    assert sorted(set(curve["x"])) == [0.0, 1e-5, 1e-4, 1e-3, 1e-2]
    assert {"series", "x", "mean", "ci_low", "ci_high", "n"} <= set(curve.columns)
    assert (out / "alpha.png").stat().st_size > 1000
    assert len(pd.read_csv(out / "stats.csv")) == 4 * 2 * 6
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_num_embeddings_layout_report(make_sweep):
    out = report.write_report(make_sweep("num_embeddings"))
    assert (out / "num_embeddings.png").is_file() and (out / "table_domains.md").is_file()
    markdown = (out / "table.md").read_text()
    assert "| #Emb | 2 | 3 | 4 |" in markdown and "| gAUC lift (pts) |" in markdown
    verdict_rows = pd.read_csv(out / "verdicts.csv")
    assert verdict_rows["hypothesis"].tolist() == ["H1 gauc", "H2 gauc", "H3 gauc"]
    assert set(verdict_rows["family_size"]) == {3} and (verdict_rows["mde_alpha"] == 0.05 / 3).all()
    # Same dataset as the paper: its lift, e.g. M=2: 0.66198 - 0.66138 = +0.06 pts, sized at our spread.
    assert verdict_rows["published_lift"].round(5).tolist() == [0.0006, 0.00127, 0.00118]
    assert "The paper's published +0.06 pts (KuaiRand-1K) would need about" in verdict_rows["line"][0]
    published = pd.read_csv(out / "published.csv")
    assert "published (KuaiRand-1K)" in published.columns  # same dataset: a real comparison
    assert published["ours - published"].notna().all() and len(published) == 6  # paper: gAUC overall only
    curve = pd.read_csv(out / "num_embeddings.csv")
    assert list(dict.fromkeys(curve["series"])) == ["ME-MMoE-PG", "Crocodile"]


def test_search_report_with_importances(make_sweep):
    out = report.write_report(make_sweep("search"), top_k=3)
    best = pd.read_csv(out / "best_configs.csv")
    assert best["rank"].tolist() == [1, 2, 3]
    assert best["val_auc_overall mean"].is_monotonic_decreasing
    importances = pd.read_csv(out / "importances.csv")
    assert set(importances["parameter"]) == {"alpha", "num_embeddings", "gating"}
    assert (out / "importances.png").is_file()
    assert "Importances by" in (out / "report.html").read_text()


def test_search_without_journal_notes_it(make_sweep):
    sweep_dir = make_sweep("search-no-journal")
    out = report.write_report(sweep_dir)
    page = (out / "report.html").read_text()
    assert "does not exist; no importances" in page
    assert not (sweep_dir / "optuna.journal").exists()  # not created by looking for it


def test_too_few_trials_is_a_note(tmp_path):
    import optuna

    journal = tmp_path / "j.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    optuna.create_study(study_name="one", storage=storage).enqueue_trial({"alpha": 1.0})
    result = report.optuna_importances(journal, "one")
    assert result.frame is None and "0 completed Optuna trial(s)" in result.note
    assert "KeyError" in report.optuna_importances(journal, "no-such-study").note


def test_empty_sweep_still_reports(tmp_path, make_sweep):
    sweep_dir = make_sweep("rows")
    for file in (sweep_dir / "results").iterdir():
        file.unlink()
    out = report.write_report(sweep_dir)
    assert "| MMoE | n/a (0/6) |" in (out / "table.md").read_text()
    assert len(pd.read_csv(out / "missing_seeds.csv")) == 18


def test_bad_sweep_file_names_the_key(make_sweep):
    sweep_dir = make_sweep("rows")
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    spec["comparisons"].append({"variant": "Nope", "reference": "MMoE"})
    with pytest.raises(ValueError, match="'Nope' is not a declared variant"):
        report.spec_from_dict(spec)
    with pytest.raises(ValueError, match="layout='grid'"):
        report.spec_from_dict({**spec, "layout": "grid"})
    with pytest.raises(ValueError, match="lacks key 'seeds'"):
        report.spec_from_dict({k: v for k, v in spec.items() if k != "seeds"})


def test_cli_main_and_errors(make_sweep, tmp_path, capsys):
    sweep_dir = make_sweep("rows")
    assert report.main([str(sweep_dir)]) == 0
    assert "report.html" in capsys.readouterr().out
    assert report.main([str(tmp_path / "nowhere")]) == 2
    assert "sweep.json does not exist" in capsys.readouterr().err


def test_cli_subprocess(make_sweep):
    sweep_dir = make_sweep("alpha")
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "sweeper.report", str(sweep_dir)], capture_output=True,
                          text=True, env=env, cwd=sweep_dir, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (sweep_dir / "report" / "report.html").is_file()


def test_wandb_failure_never_fails_the_report(make_sweep, monkeypatch):
    import wandb

    def broken_init(*args, **kwargs):
        raise RuntimeError("no network")
    monkeypatch.setattr(wandb, "init", broken_init)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = report.write_report(make_sweep("rows"), wandb_mode="offline")
    assert "W&amp;B logging (offline) failed: RuntimeError: no network" in (out / "report.html").read_text()
    assert "WANDB_MODE" not in os.environ  # restored


def test_wandb_offline_summary_run(make_sweep, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    sweep_dir = make_sweep("rows")
    out = report.write_report(sweep_dir, wandb_mode="offline")
    assert "Logged the report run to W&amp;B (offline): t5-report, group t5" in (out / "report.html").read_text()
    (run,) = wandb_log.offline_runs(sweep_dir / "wandb")  # where the sweep's trial runs go too
    assert (run.name, run.group, run.job_type, run.exit_code) == ("t5-report", "t5", "report", 0)
    tables = run.tables()
    assert {"results", "summary", "stats", "published"} <= set(tables)
    stats_table = tables["stats"]
    for column in ("delta", "p_adjusted", "n"):  # numbers, not strings
        index = stats_table["columns"].index(column)
        assert all(isinstance(row[index], (int, float)) for row in stats_table["data"]), column
    assert "WANDB_MODE" not in os.environ


def test_sweep_service_variations(make_sweep):
    """domains null (real datasets: read off the metric columns), an in-flight .tmp- file, wandb_mode None."""
    sweep_dir = make_sweep("rows")
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    spec.update(domains=None, search_params=["alpha"], created_at=1.0)  # unknown keys are ignored
    (sweep_dir / "sweep.json").write_text(json.dumps(spec))
    (sweep_dir / "results" / ".tmp-abc-s0-ok-1234.parquet").write_bytes(b"half written")
    out = report.write_report(str(sweep_dir), wandb_mode=None)
    assert "| Variant | AUC S0 | AUC S1 | AUC S2 | AUC S4 | AUC S6 | AUC Overall | AUC lift (pts) |" in (
        out / "table.md").read_text()


def test_search_lists_only_failed_trials_as_missing(make_sweep):
    sweep_dir = make_sweep("search")
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    (sweep_dir / "sweep.json").write_text(json.dumps({**spec, "seeds": [0, 1, 2]}))  # 1 seed per trial ran
    out = report.write_report(sweep_dir)
    assert pd.read_csv(out / "missing_seeds.csv").empty


def test_published_numbers_ship_with_the_package():
    published = report.load_published()
    assert list(published.columns) == ["dataset", "table", "method", "metric", "domain", "value"]
    crocodile = published[(published["dataset"] == "kuairand1k") & (published["table"] == "table5")
                          & published["method"].str.contains("Crocodile") & (published["metric"] == "gauc")]
    assert crocodile["value"].tolist() == [0.66373]


def test_bayes_gap_is_stated_and_a_table_below_90_percent_says_why(make_sweep):
    sweep_dir = make_sweep("rows")
    files = sorted((sweep_dir / "results").glob("*.parquet"))
    for file in files:
        frame = pd.read_parquet(file)
        # Best variant (Crocodile, 0.7875): (0.7875 - 0.5) / (0.85 - 0.5) = 82 % < 90 %.
        frame["test_bayesauc_overall"] = 0.85
        frame.to_parquet(file)
    # Every run peaked at epoch 3 of 5 (the fixture): converged short of the truth.
    out = report.write_report(sweep_dir)
    lines = (out / "verdicts.txt").read_text().splitlines()
    assert lines[-1].startswith("Training quality: overall test AUC as a fraction of the Bayes gap, (auc - 0.5) / "
                                "(bayes - 0.5): MMoE 81.7 %, ME-MMoE 81.8 %, Crocodile 82.2 %")
    gap = pd.read_csv(out / "bayes_gap.csv")
    runs = int(gap["n"].sum())  # finished runs only
    assert lines[-1].endswith(f"needed >= 90 %: data-limited: converged short of the truth ({runs} of {runs} runs "
                              "peaked before their last allowed epoch, so more epochs will not close the gap (more "
                              "data may); the table compares models converged on this much data).")
    written = pd.read_csv(out / "verdicts.csv")
    assert written["data_limited"].all() and not written["undertrained"].any()
    assert gap["fraction"].round(3).tolist() == [0.817, 0.818, 0.822]
    assert gap["still_improving"].tolist() == [0, 0, 0]
    assert "<li class='verdict data-limited'>Training quality" in (out / "report.html").read_text()

    # Crocodile's runs were still improving when the 5 epochs ran out: more epochs would change the table.
    for file in files:
        frame = pd.read_parquet(file)
        frame.loc[frame["variant"] == "Crocodile", "best_epoch"] = 5
        frame.to_parquet(file)
    out = report.write_report(sweep_dir)
    lines = (out / "verdicts.txt").read_text().splitlines()
    crocodile = int(gap.set_index("variant").loc["Crocodile", "n"])
    assert lines[-1].endswith(f"needed >= 90 %: undertrained: conclusions unreliable (runs still improving at "
                              f"their last allowed epoch: Crocodile {crocodile} of {crocodile}; more epochs would "
                              "change the numbers).")
    written = pd.read_csv(out / "verdicts.csv")
    assert written["undertrained"].all() and not written["data_limited"].any()
    assert "<li class='verdict undertrained'>Training quality" in (out / "report.html").read_text()
    assert "undertrained: conclusions unreliable" in (out / "report.md").read_text().split("## Table")[0]


def test_search_and_no_hypotheses_say_there_is_no_verdict(make_sweep):
    out = report.write_report(make_sweep("search"))
    assert (out / "verdicts.txt").read_text().startswith("No verdict: a search is exploratory")
    assert pd.read_csv(out / "verdicts.csv").empty
    sweep_dir = make_sweep("alpha")
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    (sweep_dir / "sweep.json").write_text(json.dumps({**spec, "hypotheses": []}))
    assert (report.write_report(sweep_dir) / "verdicts.txt").read_text().startswith(
        "No verdict: the space file declares no hypotheses")


def test_a_searchs_training_quality_names_its_top_configurations_by_parameters(make_sweep):
    sweep_dir = make_sweep("search")
    for file in (sweep_dir / "results").glob("*.parquet"):
        frame = pd.read_parquet(file)
        frame["test_bayesauc_overall"] = 0.85
        frame.to_parquet(file)
    out = report.write_report(sweep_dir)
    line = (out / "verdicts.txt").read_text().splitlines()[-1]
    first = pd.read_csv(out / "best_configs.csv").iloc[0]
    assert line.startswith("Training quality: overall test AUC as a fraction of the Bayes gap, (auc - 0.5) / "
                           "(bayes - 0.5): #1 (")
    assert "#2 (" in line and "#3 (" in line and "#4 (" not in line and "trial-" not in line
    assert "alpha=" in line and "num_embeddings=" in line and "gating=" in line
    assert len(pd.read_csv(out / "bayes_gap.csv")) == 8  # the CSV keeps every trial
    assert (f"#1 (num_embeddings={first['num_embeddings']}, gating={first['gating']}, alpha={first['alpha']:.4g})"
            in line)


def test_print_verdicts_never_prints_a_stale_answer(make_sweep, capsys):
    sweep_dir = make_sweep("rows")
    report.write_report(sweep_dir)
    report.print_verdicts(sweep_dir)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "verdicts:" and out[1].startswith("  Crocodile vs MMoE, overall AUC: +0.15 pts") and len(out) == 3
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    (sweep_dir / "sweep.json").write_text(json.dumps({**spec, "layout": "grid"}))
    with pytest.raises(ValueError):
        report.write_report(sweep_dir)
    report.print_verdicts(sweep_dir)
    assert capsys.readouterr().out == ""  # the old verdicts went with the failed report
    report.print_verdicts("s3://bucket/sweep")  # remote: nothing to read here, no error
    assert capsys.readouterr().out == ""


def test_bad_hypotheses_in_sweep_json_name_the_key(make_sweep):
    spec = json.loads((make_sweep("rows") / "sweep.json").read_text())
    spec["hypotheses"] = [{"variant": "Crocodile", "references": ["Nope"], "metrics": ["auc"]}]
    with pytest.raises(ValueError, match="sweep.json hypotheses\\[0\\].reference: 'Nope' is not a variant"):
        report.spec_from_dict(spec)
    with pytest.raises(ValueError, match="sweep.json seed_test='sign'"):
        report.spec_from_dict({**spec, "hypotheses": [], "seed_test": "sign"})


def test_welch_seed_test_from_sweep_json(make_sweep):
    sweep_dir = make_sweep("rows")
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    (sweep_dir / "sweep.json").write_text(json.dumps({**spec, "seed_test": "welch"}))
    frame = pd.read_csv(report.write_report(sweep_dir) / "stats.csv")
    crocodile = frame[(frame["variant"] == "Crocodile") & (frame["domain"] == "overall")]
    assert set(crocodile["test"]) == {stats.WELCH} and set(crocodile["variant_n"]) == {5}
