"""Fault injection: what a sweep does when its driver is killed or stopped, when a results file is
damaged, when two drivers run the same sweep, when a trial dies mid-training, and when the input is
wrong in a way only the data or the cluster can tell. One small Ray cluster (2 CPUs) per module;
drivers run as subprocesses joined to it (RAY_ADDRESS), as on a real cluster."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml

from sweeper import exit_codes, run, tune_runner
from sweeper.store import load_results

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]
VARIANTS = [{"name": "MMoE", "set": {"embedding": "SE", "gating": "standard", "aux_loss": "none"}},
            {"name": "ME-MMoE-PG", "set": {"embedding": "ME", "gating": "pg", "aux_loss": "none"}}]
SMALL = ["num_embeddings=2", "expert_hidden=16,8", "tower_hidden=8"]


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def space_file(tmp_path: Path, seeds=(0, 1), **extra) -> str:
    body = {"study": "replicate", "seeds": list(seeds), "reference": "MMoE", "variants": VARIANTS,
            "resources": {"workers": 0, "cpus_per_worker": 1}, **extra}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def args(tmp_path: Path, space: str, *extra: str) -> list[str]:
    return ["--space", space, "--storage", str(tmp_path / "sweeps"), "--name", "f", "--smoke-test", "--wandb", "off",
            *SMALL, *extra]


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def no_driver_left():
    """A driver a failed test leaves running would hold the cluster's CPUs for the next tests."""
    yield
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def driver(cluster: str, argv: list[str], log: Path) -> subprocess.Popen:
    """`python sweeper/run.py ARGV` joined to the test cluster, output to log."""
    env = {**os.environ, "RAY_ADDRESS": cluster, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(REPO / "sweeper" / "run.py"), *argv], cwd=REPO, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    STARTED.append(proc)
    return proc


def wait_for_rows(results: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> list[Path]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = sorted(results.glob("*.parquet")) if results.is_dir() else []
        if len(rows) >= n:
            return rows
        assert proc.poll() is None, f"the driver ended (rc {proc.returncode}) before storing {n} rows"
        time.sleep(0.2)
    raise AssertionError(f"no {n} rows in {results} within {timeout} s")


def keys(frame: pd.DataFrame) -> list[tuple[str, int]]:
    return sorted(zip(frame["variant"], frame["seed"]))


ALL = [("ME-MMoE-PG", 0), ("ME-MMoE-PG", 1), ("MMoE", 0), ("MMoE", 1)]


def test_kill_9_mid_sweep_then_resume_loses_nothing_and_reruns_nothing(cluster, tmp_path):
    space, results = space_file(tmp_path), tmp_path / "sweeps" / "f" / "results"
    proc = driver(cluster, args(tmp_path, space, "--no-report"), tmp_path / "first.log")
    wait_for_rows(results, 1, proc)
    proc.kill()
    proc.wait(timeout=30)
    time.sleep(2)  # Ray stops the dead driver's trials; one may have stored its row meanwhile
    finished = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in results.glob("*.parquet")}
    assert 1 <= len(finished) < 4, finished

    resumed = driver(cluster, args(tmp_path, space), tmp_path / "second.log")
    assert resumed.wait(timeout=180) == exit_codes.OK, (tmp_path / "second.log").read_text()[-3000:]
    out = (tmp_path / "second.log").read_text()
    assert f"{4 - len(finished)} trials to run, {len(finished)} (cell, seed)s already stored" in out
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in results.glob("*.parquet")}
    assert {name: after.get(name) for name in finished} == finished  # the finished files, untouched
    frame = load_results(str(tmp_path / "sweeps" / "f"), all_attempts=True)
    assert keys(frame) == ALL and set(frame["status"]) == {"ok"} and set(frame["attempt"]) == {1}


def test_a_truncated_results_file_is_set_aside_and_its_cell_reruns(cluster, tmp_path, capsys):
    from sweeper import report

    space = space_file(tmp_path, seeds=(0,))
    argv = ["--space", space, "--storage", str(tmp_path / "sweeps"), "--name", "t", "--smoke-test", "--wandb", "off",
            *SMALL]
    assert run.main([*argv, "--no-report"]) == exit_codes.OK
    results = tmp_path / "sweeps" / "t" / "results"
    victim = sorted(results.glob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:1000])  # a partial write by another process / a full disk
    assert report.main([str(tmp_path / "sweeps" / "t")]) == 0  # the report still renders ...
    assert "1 unreadable results file(s) were set aside" in (tmp_path / "sweeps" / "t" / "report" /
                                                            "report.html").read_text()
    capsys.readouterr()
    assert run.main(argv) == exit_codes.OK  # ... and the sweep resumes, with its report
    out = capsys.readouterr().out
    assert "1 trials to run, 1 (cell, seed)s already stored" in out and "report: " in out
    assert (results / ".corrupt" / victim.name).exists() and len(pd.read_parquet(results)) == 2


def test_two_drivers_at_once_store_every_cell_exactly_once(cluster, tmp_path):
    space = space_file(tmp_path)
    procs = [driver(cluster, args(tmp_path, space, "--no-report"), tmp_path / f"d{i}.log") for i in range(2)]
    codes = [p.wait(timeout=240) for p in procs]
    logs = [(tmp_path / f"d{i}.log").read_text() for i in range(2)]
    assert codes == [exit_codes.OK, exit_codes.OK], "\n".join(log[-2000:] for log in logs)
    frame = load_results(str(tmp_path / "sweeps" / "f"), all_attempts=True)
    assert keys(frame) == ALL and set(frame["status"]) == {"ok"}  # no (cell, seed) ran twice
    assert all("done in" in log.strip().splitlines()[-1] for log in logs)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, exit_codes.SIGINT), (signal.SIGTERM, exit_codes.SIGTERM)])
def test_a_stop_signal_stops_cleanly_marks_the_report_partial_and_resume_completes(cluster, tmp_path, sig, code):
    space, sweep = space_file(tmp_path), tmp_path / "sweeps" / "f"
    proc = driver(cluster, args(tmp_path, space), tmp_path / "first.log")
    wait_for_rows(sweep / "results", 1, proc)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == code
    out = (tmp_path / "first.log").read_text()
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"stopped by {sig.name}") and "resume with: python sweeper/run.py --space" in last, out
    # Not Ray's C++ crash dump ("*** SIGTERM received at time=... PC: @ 0x...", exit 134), no traceback.
    assert "*** SIGTERM received" not in out and "Traceback" not in out and "PC: @" not in out, out[-3000:]
    assert (sweep / "report" / "PARTIAL").exists()
    assert "Partial sweep report" in (sweep / "report" / "report.html").read_text()
    if sig == signal.SIGTERM:
        return  # the same resume as SIGINT's below
    resumed = driver(cluster, args(tmp_path, space), tmp_path / "second.log")
    assert resumed.wait(timeout=180) == exit_codes.OK, (tmp_path / "second.log").read_text()[-3000:]
    assert keys(load_results(str(sweep), all_attempts=True)) == ALL
    assert not (sweep / "report" / "PARTIAL").exists()


@pytest.mark.parametrize("extra, message", [
    (["monitor=val_auc_S9"], "monitor: 'val_auc_S9' names domain 'S9', which synthetic:tiny does not have"),
    (["--data", "parquet:/nonexistent.parquet"], "dataset file '/nonexistent.parquet' does not exist"),
    (["--space", "TRAIN"], "one Ray Train trial needs 0.2 CPU for its driver + 1 worker(s) x (4 CPU) = 4.2 CPU, "
                           "but the cluster has 1 node(s), 2 CPU"),
])
def test_preflight_fails_in_seconds_with_one_line(cluster, tmp_path, extra, message):
    space = space_file(tmp_path)
    if extra == ["--space", "TRAIN"]:
        train = tmp_path / "train.yaml"
        train.write_text(yaml.safe_dump({**yaml.safe_load(Path(space).read_text()),
                                         "resources": {"workers": 1, "cpus_per_worker": 4}}))
        extra = ["--space", str(train)]
    started = time.time()
    proc = subprocess.run([sys.executable, str(REPO / "sweeper" / "run.py"), *args(tmp_path, space), *extra],
                          cwd=REPO, env={**os.environ, "RAY_ADDRESS": cluster, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == exit_codes.USAGE, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert time.time() - started < 45
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: ") and message in errors[0], proc.stderr
    assert not (tmp_path / "sweeps" / "f" / "results").exists()  # no trial ran


def test_a_trial_killed_mid_training_resumes_from_its_checkpoint(cluster, tmp_path, monkeypatch):
    import psutil
    import torch

    from model.config import RunConfig
    from model.datasets import load_data
    from model.train import SMOKE_OVERRIDES, train

    space = space_file(tmp_path, seeds=(0,), variants=VARIANTS[:1])
    sweep, killed, registered = tmp_path / "sweeps" / "k", [], threading.Event()
    # Kill only once the driver has registered a checkpoint: its folder appears in storage before the
    # driver's save call returns, and a kill in that window restarts the trial from scratch.
    monkeypatch.setattr(tune_runner.Progress, "on_checkpoint",
                        lambda self, iteration, trials, trial, checkpoint, **info: registered.set(), raising=False)

    def kill_after_first_checkpoint():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            if registered.is_set():
                for proc in psutil.Process().children(recursive=True):
                    try:
                        if "ImplicitFunc" in " ".join(proc.cmdline()):
                            proc.kill()
                            killed.append(proc.pid)
                    except psutil.Error:
                        pass
            time.sleep(0.05)

    killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    killer.start()
    argv = ["--space", space, "--storage", str(tmp_path / "sweeps"), "--name", "k", "--smoke-test", "--wandb", "off",
            "--no-report", *SMALL, "epochs=3", "patience=3"]
    assert run.main(argv) == exit_codes.OK
    killer.join(timeout=5)
    assert killed, "the trial was never killed"
    row = load_results(str(sweep)).iloc[0]
    # Epoch 1's or, if the kill landed after the next report, epoch 2's checkpoint; never a restart.
    assert row["status"] == "ok" and row["resumed_from_epoch"] >= 1 and row["epochs_run"] == 3
    overrides = {**SMOKE_OVERRIDES, **dict(a.split("=") for a in SMALL), **VARIANTS[0]["set"], "epochs": 3,
                 "patience": 3, "seed": 0}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the trial: another thread count sums in another order
    try:
        expected = train(RunConfig().with_overrides(overrides), load_data("synthetic:tiny")).metrics
    finally:
        torch.set_num_threads(threads)
    metrics = [k for k in expected if k.startswith(("val_", "test_"))]
    # The resumed trial ends exactly where an uninterrupted run ends.
    assert row[metrics].to_dict() == pytest.approx({k: expected[k] for k in metrics}, nan_ok=True, abs=1e-12)
