"""W&B runs logged from the trial, read back from their offline files."""
import pytest

from sweeper import wandb_log

IDENTITY = {"sweep": "t5", "study": "replicate", "variant": "Crocodile", "cell": "abc123", "trial_id": "x1",
            "data": "synthetic:tiny", "lr": 1e-3, "expert_hidden": (64, 32), "gating": "peg", "alpha": 0.1}


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return wandb_log.Target(mode="offline", group="t5", dir=str(tmp_path / "wandb"))


def test_one_finished_run_per_seed_with_flat_config_epoch_steps_and_test_summary(offline, tmp_path):
    logger = wandb_log.TrialLogger(offline, job_type="Crocodile", extra_config={"git_commit": "abc1234"})
    for seed in (0, 1):
        logger.start_seed({**IDENTITY, "seed": seed})
        for epoch in (1, 2):
            logger.log_epoch({"epoch": epoch, "train_loss": 0.5 / epoch, "val_auc_overall": 0.6 + epoch / 100,
                              "seed": seed, "seed_index": 0, "objective": 0.6, "ia_item_id_S6": 3.0 + epoch})
        logger.end_seed({**IDENTITY, "seed": seed, "status": "ok", "error": "", "test_auc_overall": 0.7 + seed,
                         "val_auc_overall": 0.62, "best_epoch": 2, "epochs_run": 2, "ia_item_id_S6": 5.5,
                         "di_S1_S6": 0.25, "di_mean": float("nan"), "diagnostics_s": 0.5})
    logger.shutdown()  # what every trial does last: W&B's service flushes the files as it stops
    assert logger.error == "" and logger.names == ["Crocodile-s0", "Crocodile-s1"]

    runs = {run.name: run for run in wandb_log.offline_runs(tmp_path / "wandb")}
    assert sorted(runs) == ["Crocodile-s0", "Crocodile-s1"]
    run = runs["Crocodile-s1"]
    assert (run.group, run.job_type, run.exit_code) == ("t5", "Crocodile", 0)
    assert {k: run.config[k] for k in ("lr", "expert_hidden", "gating", "variant", "seed", "sweep", "data",
                                       "git_commit", "cell")} == {
        "lr": 1e-3, "expert_hidden": [64, 32], "gating": "peg", "variant": "Crocodile", "seed": 1, "sweep": "t5",
        "data": "synthetic:tiny", "git_commit": "abc1234", "cell": "abc123"}
    assert [(h["epoch"], h["_step"]) for h in run.history] == [(1, 1), (2, 2)]
    assert "seed" not in run.history[0] and "objective" not in run.history[0]
    assert run.summary["test_auc_overall"] == 1.7 and run.summary["best_epoch"] == 2
    assert run.summary["status"] == "ok"
    assert [h["ia_item_id_S6"] for h in run.history] == [4.0, 5.0]  # per-epoch diagnostics in the history
    assert (run.summary["ia_item_id_S6"], run.summary["di_S1_S6"], run.summary["diagnostics_s"]) == (5.5, 0.25, 0.5)
    assert "di_mean" not in run.summary  # NaN: not applicable, not logged


def test_a_stopped_seed_is_finished_and_a_failed_seed_exits_non_zero(offline, tmp_path):
    logger = wandb_log.TrialLogger(offline, job_type="search", extra_config={})
    logger.start_seed({**IDENTITY, "variant": "trial-1", "seed": 0})
    logger.log_epoch({"epoch": 1, "val_auc_overall": 0.6})
    logger.close("stopped")  # ASHA stopped the trial mid-seed
    logger.start_seed({**IDENTITY, "variant": "trial-2", "seed": 0})
    logger.end_seed({**IDENTITY, "variant": "trial-2", "seed": 0, "status": "failed",
                     "error": "FloatingPointError: loss is nan"})
    logger.shutdown()
    runs = {run.name: run for run in wandb_log.offline_runs(tmp_path / "wandb")}
    assert (runs["trial-1-s0"].exit_code, runs["trial-1-s0"].summary["status"]) == (0, "stopped")
    assert runs["trial-2-s0"].exit_code == 1 and "nan" in runs["trial-2-s0"].summary["error"]


def test_wandb_failure_turns_logging_off_and_never_raises(offline, monkeypatch):
    import wandb

    def broken(*args, **kwargs):
        raise RuntimeError("no network")

    monkeypatch.setattr(wandb, "init", broken)
    logger = wandb_log.TrialLogger(offline, job_type="A", extra_config={})
    logger.start_seed({**IDENTITY, "seed": 0})
    logger.log_epoch({"epoch": 1, "val_auc_overall": 0.6})
    logger.end_seed({**IDENTITY, "seed": 0, "status": "ok"})
    assert logger.error == "RuntimeError: no network" and logger.names == []


def test_off_logs_nothing(tmp_path):
    logger = wandb_log.TrialLogger(None, job_type="A", extra_config={})
    logger.start_seed({**IDENTITY, "seed": 0})
    logger.end_seed({**IDENTITY, "seed": 0, "status": "ok"})
    assert logger.names == [] and not (tmp_path / "wandb").exists()


def test_modes(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    assert wandb_log.resolve_mode(None) == "off" and wandb_log.resolve_mode("auto") == "offline"
    assert wandb_log.credentials_problem("online").startswith("--wandb online needs WANDB_API_KEY")
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    assert wandb_log.resolve_mode(None) == "online" and wandb_log.credentials_problem("online") is None
    with pytest.raises(ValueError, match="--wandb must be one of"):
        wandb_log.resolve_mode("disabled")
