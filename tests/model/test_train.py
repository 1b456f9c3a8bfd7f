import math

import pytest
import torch

from model.config import RunConfig
from model.train import SMOKE_OVERRIDES, main, train

FAST = {**SMOKE_OVERRIDES, "num_embeddings": 2}


def test_same_seed_same_metrics_on_cpu(tiny):
    config = RunConfig().with_overrides({**FAST, "epochs": 2})
    first = train(config, tiny)
    second = train(config, tiny)
    assert first.metrics == second.metrics
    other = train(config.with_overrides({"seed": 1}), tiny)
    assert other.metrics != first.metrics


def test_brief_training_beats_chance_overall_and_on_large_domains(tiny):
    config = RunConfig().with_overrides({"epochs": 4, "batch_size": 512, "lr": 3e-3, "expert_hidden": (32, 16),
                                          "tower_hidden": (8,), "num_embeddings": 3, "aux_rows": 256})
    epochs = []
    result = train(config, tiny, on_epoch=lambda e, record: epochs.append((e, record)))
    for domain in ("overall", "S1", "S0"):
        assert result.metrics[f"test_auc_{domain}"] > 0.62, domain
    assert result.metrics["test_gauc_overall"] > 0.58
    assert result.metrics["test_bayesauc_overall"] > result.metrics["test_auc_overall"]
    assert [e for e, _ in epochs] == list(range(1, result.epochs_run + 1))
    assert all("val_auc_S6" in record and record["train_loss"] > 0 for _, record in epochs)
    assert 1 <= result.best_epoch <= result.epochs_run
    assert result.samples_per_s > 0 and set(result.metrics) >= {"val_auc_overall", "test_gauc_S6"}


def test_early_stopping_keeps_the_best_epoch(tiny):
    # lr so high that validation AUC peaks early: training stops after `patience` worse epochs.
    config = RunConfig().with_overrides({**FAST, "epochs": 12, "patience": 1, "lr": 0.3})
    result = train(config, tiny)
    assert result.epochs_run == result.best_epoch + 1 or result.epochs_run == 12
    best = result.history[result.best_epoch - 1]
    assert result.metrics["val_auc_overall"] == best["val_auc_overall"]
    assert best["val_auc_overall"] == max(h["val_auc_overall"] for h in result.history)


def test_nan_loss_raises_naming_the_cause(tiny):
    config = RunConfig().with_overrides({**FAST, "alpha": 1e38, "aux_loss": "dot", "lr": 1.0})
    with pytest.raises(FloatingPointError, match="training loss is"):
        train(config, tiny)


def test_monitor_domain_must_exist(tiny):
    with pytest.raises(ValueError, match="names domain 'S9'"):
        train(RunConfig().with_overrides({**FAST, "monitor": "val_auc_S9"}), tiny)


def test_cli_smoke_test(capsys):
    assert main(["--smoke-test", "gating=pg"]) == 0
    out = capsys.readouterr().out
    assert "test metrics" in out and "S6" in out and "samples/s" in out


def test_cli_rejects_unknown_key_before_loading_data(capsys, monkeypatch):
    import model.train as train_module

    def no_data(spec):
        raise AssertionError("data must not be loaded for a bad key")

    monkeypatch.setattr(train_module, "load_data", no_data)
    assert main(["--data", "synthetic:kuairand", "nope=1"]) == 2
    assert "unknown config key 'nope'" in capsys.readouterr().err


def test_cli_bad_value_is_one_line_and_exit_2():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "model.train", "gating=pgg"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: unknown gating 'pgg'; valid: ['eg', 'peg', 'pg', 'standard'] (or 'none' for architectures without gates)"]


def test_a_monitor_that_is_never_defined_fails_clearly(tiny):
    from dataclasses import replace

    # Every validation row of S6 made a click: its AUC is undefined (NaN) in every epoch.
    labels = tiny.labels.clone()
    labels[(tiny.split == 1) & (tiny.domains == 4)] = 1.0
    with pytest.raises(ValueError, match="monitor 'val_auc_S6' was NaN in every epoch"):
        train(RunConfig().with_overrides({**FAST, "monitor": "val_auc_S6"}), replace(tiny, labels=labels))


# ---- mechanism diagnostics (model/probe.py) ------------------------------------------------------

def test_run_result_carries_the_best_epochs_diagnostics_and_they_change_no_metric(tiny):
    from model.probe import diagnostic_columns

    config = RunConfig().with_overrides({**FAST, "epochs": 3, "patience": 3, "diagnostics_every": 1,
                                         "diagnostics_rows": 256})
    records = []
    result = train(config, tiny, on_epoch=lambda e, r: records.append(r))
    assert tuple(result.diagnostics) == diagnostic_columns(tiny.domain_names)
    assert math.isfinite(result.diagnostics["ia_item_id_S6"]) and math.isfinite(result.diagnostics["di_mean"])
    assert "item_id_set0" in result.spectra and "expert1_S6" in result.spectra
    assert result.diagnostics_s > 0
    # One entry per epoch, the best one equal to the best epoch's measurement (the same weights).
    assert [d["epoch"] for d in result.diagnostics_epochs] == [1, 2, 3]
    best = {k: v for k, v in result.diagnostics_epochs[result.best_epoch - 1].items() if k != "epoch"}
    assert all(best[k] == v or (math.isnan(v) and math.isnan(best[k])) for k, v in result.diagnostics.items())
    assert all("ia_expert_S6" in r for r in records)  # on_epoch sees them (W&B history) ...
    assert all("ia_expert_S6" not in h for h in result.history)  # ... the history does not repeat them
    off = train(config.with_overrides({"diagnostics": False}), tiny)
    assert off.metrics == result.metrics  # measuring uses no random state and trains nothing
    assert (off.diagnostics, off.spectra, off.diagnostics_epochs, off.diagnostics_s) == ({}, {}, [], 0.0)


def test_diagnostics_every_k_measures_every_kth_epoch_and_by_default_only_the_best(tiny):
    config = RunConfig().with_overrides({**FAST, "epochs": 3, "patience": 3, "diagnostics_rows": 128})
    assert train(config.with_overrides({"diagnostics_every": 2}), tiny).diagnostics_epochs[0]["epoch"] == 2
    default = train(config, tiny)
    assert default.diagnostics_epochs == [] and default.diagnostics


def test_a_resumed_run_keeps_the_per_epoch_diagnostics(tiny):
    from model.checkpoint import TrainState

    config = RunConfig().with_overrides({**FAST, "epochs": 3, "patience": 3, "diagnostics_every": 1,
                                         "diagnostics_rows": 128})
    states = []
    full = train(config, tiny, on_state=lambda s: states.append(s.to_bytes()))
    resumed = train(config, tiny, resume=TrainState.from_bytes(states[0]))
    assert resumed.resumed_from_epoch == 1
    assert [d["epoch"] for d in resumed.diagnostics_epochs] == [1, 2, 3]
    for a, b in zip(resumed.diagnostics_epochs, full.diagnostics_epochs, strict=True):
        assert all(a[k] == v or (math.isnan(v) and math.isnan(a[k])) for k, v in b.items())
    assert resumed.diagnostics_s > TrainState.from_bytes(states[0]).diagnostics_s > 0


def test_task_loss_global_trains_on_one_mean_over_the_rows(tiny):
    base = RunConfig().with_overrides({**SMOKE_OVERRIDES, "diagnostics": False})
    per_domain = train(base, tiny)
    one_mean = train(base.with_overrides({"task_loss": "global"}), tiny)
    # eq. 7 sums 5 domain means, the global loss is one mean: about 5x apart in the first epoch.
    assert per_domain.history[0]["train_loss"] > 3 * one_mean.history[0]["train_loss"]
    assert one_mean.metrics["test_auc_overall"] > 0.5
