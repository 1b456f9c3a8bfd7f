"""A trial runs without Ray: train seeds, store rows, keep going after a failure."""
import json
import math

import pandas as pd
import pytest

from model.probe import diagnostic_columns
from model.train import SMOKE_OVERRIDES, train
from sweeper.trial import Job, cached_data, run_job


def job(tmp_path, **changes):
    fields = dict(sweep="t", study="replicate", variant="Crocodile", factors={"gating": "peg", "aux_loss": "cov"},
                  base={**SMOKE_OVERRIDES, "num_embeddings": 2}, seeds=(0, 1), data="synthetic:tiny",
                  sweep_uri=str(tmp_path / "t"))
    return Job(**{**fields, **changes})


def test_run_job_stores_one_row_per_seed_matching_a_direct_run(tmp_path):
    reports = []
    summary = run_job(job(tmp_path), report=lambda record, checkpoint: reports.append(record))
    frame = pd.read_parquet(tmp_path / "t" / "results").sort_values("seed")
    assert list(frame["seed"]) == [0, 1] and set(frame["status"]) == {"ok"}
    assert frame["cell"].nunique() == 1 and set(frame["gating"]) == {"peg"}
    direct = train(job(tmp_path).config(0), cached_data("synthetic:tiny"))
    assert frame.iloc[0]["test_auc_overall"] == direct.metrics["test_auc_overall"]
    assert summary["objective"] == pytest.approx(frame["val_auc_overall"].mean())
    assert [r["seed"] for r in reports] == [0, 1] and all("objective" in r for r in reports)
    for column in ("git_commit", "host", "torch_version", "optuna_version", "wall_time_s", "samples_per_s",
                   "best_epoch", "epochs_run", "test_gauc_S6", "finished_at"):
        assert column in frame.columns
    # The best epoch's diagnostics: every contract column, the same as a direct run's, and the artefact.
    assert set(diagnostic_columns(direct_domains())) <= set(frame.columns)
    first = frame.iloc[0]
    assert first["ia_item_id_S6"] == direct.diagnostics["ia_item_id_S6"] and math.isfinite(first["di_mean"])
    assert math.isnan(first["ia_item_id_set2"])  # num_embeddings=2: no third set
    assert (frame["diagnostics_s"] > 0).all()
    for _, row in frame.iterrows():
        assert row["diagnostics_path"] == f"diagnostics/{row['cell']}-s{row['seed']}-a{row['attempt']}.json"
        artefact = json.loads((tmp_path / "t" / row["diagnostics_path"]).read_text())
        assert artefact["best_epoch"] == row["best_epoch"] and artefact["epochs"] == []
        assert artefact["scalars"]["ia_expert1_S0"] == row["ia_expert1_S0"]
        assert artefact["scalars"]["ia_expert2_S0"] is None  # NaN is null in the JSON
        assert len(artefact["spectra"]["item_id_S6"]) == 16 and "expert1_S6" in artefact["spectra"]


def direct_domains():
    return cached_data("synthetic:tiny").domain_names


def test_the_diagnostics_artefact_is_kept_without_models_and_holds_the_epochs(tmp_path):
    run_job(job(tmp_path, seeds=(0,), keep_models=False, factors={"diagnostics_every": 1, "diagnostics_rows": 128}))
    row = pd.read_parquet(tmp_path / "t" / "results").iloc[0]
    assert pd.isna(row["model_path"]) or row["model_path"] == ""
    artefact = json.loads((tmp_path / "t" / row["diagnostics_path"]).read_text())
    assert [e["epoch"] for e in artefact["epochs"]] == [1] and "ia_item_id_freq5" in artefact["epochs"][0]
    assert row["diagnostics_every"] == 1


def test_without_diagnostics_the_columns_are_null(tmp_path):
    run_job(job(tmp_path, seeds=(0,), keep_models=False, factors={"diagnostics": False}))
    row = pd.read_parquet(tmp_path / "t" / "results").iloc[0]
    assert row["status"] == "ok" and pd.isna(row["ia_item_id"]) and pd.isna(row["di_mean"])
    assert row["diagnostics_path"] == "" and row["diagnostics_s"] == 0
    assert not (tmp_path / "t" / "diagnostics").exists()


def test_a_failing_seed_is_stored_with_its_cause_and_the_next_runs(tmp_path):
    # Both seeds diverge (NaN loss) only because alpha and lr are absurd; the job goes on after seed 0.
    # lr 1e30 overflows the weights whatever the data (with lr 1.0 one seed of synthetic v2 stayed finite).
    failing = job(tmp_path, factors={"aux_loss": "dot", "alpha": 1e38, "lr": 1e30})
    summary = run_job(failing)
    frame = pd.read_parquet(tmp_path / "t" / "results")
    assert list(frame["status"]) == ["failed", "failed"]
    assert frame["error"].str.contains("FloatingPointError: training loss is").all()
    assert math.isnan(summary["objective"]) and summary["seeds_failed"] == 2



class Hooks:
    def __init__(self):
        self.events = []

    def start_seed(self, identity):
        self.events.append(("start", identity["seed"]))

    def log_epoch(self, record):
        self.events.append(("epoch", record["seed"], record["epoch"]))

    def end_seed(self, row):
        self.events.append(("end", row["seed"], row["status"]))


def test_a_seed_batched_job_stores_every_seed_like_one_by_one(tmp_path):
    batched, hooks, reports = job(tmp_path, seeds=(0, 1, 2), seed_batch=3, base={**SMOKE_OVERRIDES, "epochs": 2,
                                     "num_embeddings": 2, "monitor": "val_logloss_overall"},
                                  objective="val_logloss_overall"), Hooks(), []
    summary = run_job(batched, seed_hooks=hooks, report=lambda record, checkpoint: reports.append(record))
    frame = pd.read_parquet(tmp_path / "t" / "results").sort_values("seed")
    assert list(frame["seed"]) == [0, 1, 2] and set(frame["status"]) == {"ok"} and frame["cell"].nunique() == 1
    # Same values as one by one only in float64 (tests/model/test_seed_batch.py); float32 rounds otherwise.
    assert frame["test_auc_overall"].nunique() == 3 and summary["seeds_ok"] == 3
    assert summary["objective"] == pytest.approx(frame["val_logloss_overall"].mean())
    # Each seed: its run opened, its epochs, its row, in that order, once it has ended.
    for seed in (0, 1, 2):
        mine = [e for e in hooks.events if e[1] == seed]
        assert mine == [("start", seed), ("epoch", seed, 1), ("epoch", seed, 2), ("end", seed, "ok")]
    assert sorted((r["seed"], r["epoch"]) for r in reports) == [(s, e) for s in (0, 1, 2) for e in (1, 2)]


def test_a_partly_stored_seed_group_trains_only_its_missing_seeds(tmp_path):
    base = {**SMOKE_OVERRIDES, "num_embeddings": 2}
    run_job(job(tmp_path, seeds=(1,), base=base))
    hooks = Hooks()
    summary = run_job(job(tmp_path, seeds=(0, 1, 2), seed_batch=3, base=base), seed_hooks=hooks)
    assert {e[1] for e in hooks.events} == {0, 2} and summary["seeds_ok"] == 3
    assert sorted(pd.read_parquet(tmp_path / "t" / "results")["seed"]) == [0, 1, 2]
