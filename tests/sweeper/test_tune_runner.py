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


def test_running_count_leaves_out_the_ended_trial_whatever_its_status():
    stream = io.StringIO()
    progress = tune_runner.Progress(total=3, metric="val_auc_overall", mode="max",
                                    display=ProgressDisplay(Console(stream, stream), total=3))
    job = {"job": {"variant": "MMoE", "seeds": [0]}}
    other = SimpleNamespace(config=job, trial_id="t0", status="RUNNING", last_result={})
    for status in ("RUNNING", "TERMINATED"):  # Tune may or may not have marked it ended yet
        ended = SimpleNamespace(config=job, trial_id="t1", status=status, last_result={"objective": 0.7})
        progress.on_trial_complete(0, [other, ended], ended)
        assert ", 1 running, " in stream.getvalue().splitlines()[-1]
    ended.status = "ERROR"
    progress.on_trial_error(0, [other, ended], ended)
    assert ", 1 running, " in stream.getvalue().splitlines()[-1]


def test_claimed_jobs_go_to_tune_and_held_ones_are_waited_for_outside_it(tmp_path):
    import time

    from sweeper.claims import Claims, Holder
    from sweeper.signals import Stop
    from sweeper.store import ResultsStore
    from sweeper.trial import Job

    def job(variant, factors):
        return Job(sweep="s", study="replicate", variant=variant, factors=factors, base={}, seeds=(0,),
                   data="synthetic:tiny", sweep_uri=str(tmp_path))

    a, b = job("A", {"alpha": 0.1}), job("B", {"alpha": 0.2})
    other = Claims(str(tmp_path), Holder(id="other", host="host-other", pid=1, started_at=time.time()), stale_after_s=1)
    assert other.try_claim(tune_runner.job_keys(a)[0]) is None
    mine = Claims(str(tmp_path), stale_after_s=1)
    searcher = tune_runner.ClaimingSearcher([a, b], mine, ResultsStore(str(tmp_path)))
    assert searcher.suggest("t1")["job"]["variant"] == "B"  # A is the other driver's
    assert searcher.suggest("t2") == tune_runner.Searcher.FINISHED and searcher.pending == [a]
    stream = io.StringIO()
    started = time.time()
    left = tune_runner.wait_for_others(searcher.pending, mine, ResultsStore(str(tmp_path)), Console(stream, stream),
                                       Stop(), poll_s=0.2)
    assert left == [a] and time.time() - started >= 0.8  # free once the other's heartbeat went stale
    assert "waiting for 1 (cell, seed)s that another driver runs (host host-other, PID 1" in stream.getvalue()
    searcher.on_trial_complete("t1")
    assert mine.held == set()
