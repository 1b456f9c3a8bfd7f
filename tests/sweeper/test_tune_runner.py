"""Pieces of the Ray layer that need no running cluster."""

from types import SimpleNamespace

from sweeper import tune_runner


def test_progress_lines(capsys, monkeypatch):
    """The progress callback: counts, ETA, best so far, and a heartbeat for long trials."""
    progress = tune_runner.Progress(total=2, metric="val_auc_overall", mode="max")
    trial = SimpleNamespace(config={"job": {"variant": "Crocodile", "seeds": [3]}}, trial_id="t1", status="RUNNING",
                            last_result={"objective": 0.7, "seeds_failed": 0})
    progress.on_trial_result(0, [trial], trial, {"epoch": 1, "objective": 0.65})
    assert capsys.readouterr().out == ""  # no heartbeat within the first minute
    monkeypatch.setattr(tune_runner, "HEARTBEAT_S", 0)
    progress.on_trial_result(0, [trial], trial, {"epoch": 2, "objective": 0.66})
    assert "Crocodile seed 3 epoch 2: val_auc_overall 0.6600" in capsys.readouterr().out
    progress.on_trial_complete(0, [trial], trial)
    line = capsys.readouterr().out
    assert "[1/2 done, 0 running, 0 with failures]" in line and "best val_auc_overall 0.7000 (Crocodile seed 3)" in line
    assert "ETA" in line
