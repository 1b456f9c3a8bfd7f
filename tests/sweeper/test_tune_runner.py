"""Pieces of the Ray layer that need no running cluster."""

import io
from types import SimpleNamespace

from sweeper import tune_runner
from sweeper.console import Console, ProgressDisplay


def test_progress_lines(monkeypatch):
    """The progress callback: counts, ETA, best so far, and a heartbeat for long trials."""
    stream = io.StringIO()
    progress = tune_runner.Progress(total=2, metric="val_auc_overall", mode="max",
                                    display=ProgressDisplay(Console(stream, stream), total=2))
    trial = SimpleNamespace(config={"job": {"variant": "Crocodile", "seeds": [3]}}, trial_id="t1", status="RUNNING",
                            last_result={"objective": 0.7, "seeds_failed": 0, "seeds_ok": 1})
    progress.on_trial_result(0, [trial], trial, {"epoch": 1, "objective": 0.65})
    assert stream.getvalue() == ""  # no heartbeat within the first minute
    monkeypatch.setattr(tune_runner, "HEARTBEAT_S", 0)
    progress.on_trial_result(0, [trial], trial, {"epoch": 2, "objective": 0.66})
    assert "Crocodile seed 3 epoch 2: val_auc_overall 0.6600" in stream.getvalue()
    progress.on_trial_complete(0, [trial], trial)
    line = stream.getvalue().splitlines()[-1]
    assert line.startswith("[1/2 done, 0 running, 0 failed]") and "ETA" in line
    assert line.endswith("| finished Crocodile seed 3: val_auc_overall 0.7000 | best 0.7000 (Crocodile seed 3)")

    search = SimpleNamespace(config={"alpha": 0.000123456, "gating": "peg"}, trial_id="ab12", status="RUNNING",
                             last_result={"objective": 0.6, "seeds_failed": 1, "seeds_ok": 0,
                                          "wandb_error": "RuntimeError: no network"})
    progress.on_trial_complete(0, [search], search)
    line = stream.getvalue().splitlines()[-1]
    assert "[2/2 done, 0 running, 1 failed]" in line
    assert "FAILED trial ab12 (alpha=0.000123, gating=peg): 1 of 1 seed(s) failed" in line
    progress.on_experiment_end([trial, search])
    assert stream.getvalue().splitlines()[-1] == (
        "W&B logging failed in 1 trial(s), results are unaffected; first: trial ab12: RuntimeError: no network")
