"""The sweep service end to end on a small local Ray cluster (one per module) and tiny data."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml

from sweeper import exit_codes, run
from sweeper.store import load_results

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_cluster():
    if ray.is_initialized():  # a cluster left by an earlier module would make ray.init fail
        ray.shutdown()
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def space_file(tmp_path, variants, **extra):
    body = {"study": "replicate", "seeds": [0, 1], "reference": variants[0]["name"], "variants": variants,
            "resources": {"workers": 0, "cpus_per_worker": 1}, **extra}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


SMALL_MODEL = ["expert_hidden=16,8", "tower_hidden=8", "batch_size=2048", "aux_rows=256", "num_embeddings=2"]
TWO = [{"name": "MMoE", "set": {"embedding": "SE", "gating": "standard", "aux_loss": "none"}},
       {"name": "Crocodile", "set": {"embedding": "ME", "gating": "peg", "aux_loss": "cov"}}]


def sweep(tmp_path, space, *extra):
    return run.main(["--space", space, "--storage", str(tmp_path / "sweeps"), "--name", "s", "--smoke-test",
                     "--wandb", "off", "num_embeddings=2", *extra])


def test_replicate_writes_a_row_per_variant_and_seed_then_resumes_for_free(ray_cluster, tmp_path, capsys):
    space = space_file(tmp_path, TWO, hypotheses=[{"variant": "Crocodile", "reference": "MMoE", "metrics": ["auc"]}])
    assert sweep(tmp_path, space) == 0
    frame = pd.read_parquet(tmp_path / "sweeps" / "s" / "results")
    assert len(frame) == 4 and set(frame["status"]) == {"ok"}
    assert sorted(zip(frame["variant"], frame["seed"])) == [("Crocodile", 0), ("Crocodile", 1), ("MMoE", 0), ("MMoE", 1)]
    assert frame["cell"].nunique() == 2
    meta = json.loads((tmp_path / "sweeps" / "s" / "sweep.json").read_text())
    assert meta["comparisons"] == [{"variant": "Crocodile", "reference": "MMoE"}]
    out = capsys.readouterr().out
    assert "4 trials to run" in out and "[4/4 done" in out
    report = tmp_path / "sweeps" / "s" / "report"
    for name in ("table.md", "table.csv", "table.tex", "stats.csv", "report.html"):
        assert (report / name).exists(), name
    assert list(report.glob("*.png")) and f"report: {report}" in out
    stats = pd.read_csv(report / "stats.csv")
    assert set(stats["variant"]) == {"Crocodile"} and set(stats["reference"]) == {"MMoE"}
    assert (stats["n"] == 2).all()
    assert meta["hypotheses"] == [{"variant": "Crocodile", "references": ["MMoE"], "metrics": ["auc"],
                                   "domain": "overall", "test": "single"}]
    # The answer comes last: one verdict line per primary hypothesis, then training quality.
    tail = out.rstrip("\n").splitlines()[-3:]
    assert tail[0] == "verdicts:" and tail[1].startswith("  Crocodile vs MMoE, overall AUC: ")
    assert tail[2].startswith("  Training quality: ") and (report / "verdicts.csv").exists()

    assert sweep(tmp_path, space) == 0
    assert "0 trials to run, 4 (cell, seed)s already stored" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "sweeps" / "s" / "results")) == 4
    assert sweep(tmp_path, space, "--force") == 0
    # The rerun is each (cell, seed)'s attempt 2: it replaces attempt 1, which is kept as history.
    latest = pd.read_parquet(tmp_path / "sweeps" / "s" / "results")
    assert len(latest) == 4 and set(latest["attempt"]) == {2}
    history = load_results(str(tmp_path / "sweeps" / "s"), all_attempts=True)
    assert len(history) == 8 and sorted(history["attempt"]) == [1] * 4 + [2] * 4
    models = list((tmp_path / "sweeps" / "s" / "models").glob("*.pt"))
    assert len(models) == 8 and set(latest["model_bytes"]) == {
        (tmp_path / "sweeps" / "s" / p).stat().st_size for p in latest["model_path"]}


def test_seed_batched_sweep_runs_a_trial_per_variant_and_seed_group(ray_cluster, tmp_path, capsys):
    resources = {"workers": 0, "cpus_per_worker": 1, "seed_batch": 2}
    space = space_file(tmp_path, TWO, resources=resources)
    assert sweep(tmp_path, space) == 0
    assert "2 trials to run" in capsys.readouterr().out  # a trial per variant: seeds 0 and 1 together
    frame = pd.read_parquet(tmp_path / "sweeps" / "s" / "results")
    assert sorted(zip(frame["variant"], frame["seed"])) == [("Crocodile", 0), ("Crocodile", 1), ("MMoE", 0), ("MMoE", 1)]
    assert set(frame["status"]) == {"ok"} and frame.groupby("variant")["trial_id"].nunique().eq(1).all()
    # A group whose seeds are partly stored trains only the missing one.
    (lost,) = [f for f in (tmp_path / "sweeps" / "s" / "results").glob("*.parquet")
               if pd.read_parquet(f).iloc[0][["variant", "seed"]].tolist() == ["Crocodile", 1]]
    lost.unlink()
    assert sweep(tmp_path, space) == 0
    assert "1 trials to run, 3 (cell, seed)s already stored" in capsys.readouterr().out
    frame = pd.read_parquet(tmp_path / "sweeps" / "s" / "results")
    assert len(frame) == 4 and set(frame["status"]) == {"ok"}


def test_a_failing_trial_is_stored_as_failed_while_the_others_finish(ray_cluster, tmp_path, capsys):
    # lr 1e30 overflows the weights whatever the data (with lr 1.0 one seed of synthetic v2 stayed finite).
    bad = {"name": "Diverges", "set": {"aux_loss": "dot", "alpha": 1e38, "lr": 1e30}}
    space = space_file(tmp_path, [TWO[0], bad])
    assert sweep(tmp_path, space) == exit_codes.FAILED
    frame = pd.read_parquet(tmp_path / "sweeps" / "s" / "results")
    status = dict(zip(zip(frame["variant"], frame["seed"]), frame["status"]))
    assert status == {("MMoE", 0): "ok", ("MMoE", 1): "ok", ("Diverges", 0): "failed", ("Diverges", 1): "failed"}
    errors = frame.loc[frame["status"] == "failed", "error"]
    assert errors.str.startswith("FloatingPointError: training loss is").all()  # root cause first, stored once
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("incomplete after") and "2 failed" in out and "(exit 3)" in out
    assert sweep(tmp_path, space) == exit_codes.FAILED  # failures are not retried by default ...
    assert "0 trials to run" in capsys.readouterr().out
    assert sweep(tmp_path, space, "--rerun-failed") == exit_codes.FAILED  # ... but on request
    assert "2 trials to run" in capsys.readouterr().out
    # The retry is attempt 2 of each failed cell: one row per (cell, seed), the first kept as history.
    frame = pd.read_parquet(tmp_path / "sweeps" / "s" / "results")
    assert len(frame) == 4 and sorted(frame["attempt"]) == [1, 1, 2, 2]
    assert len(load_results(str(tmp_path / "sweeps" / "s"), all_attempts=True)) == 6


def test_tuned_study_tunes_on_its_own_seeds_replicates_the_choice_and_reuses_finished_tuning(
        ray_cluster, tmp_path, capsys):
    tuned_space = tmp_path / "tuned.yaml"
    tuned_space.write_text(yaml.safe_dump({
        "study": "tuned", "seeds": [0, 1], "reference": "Base", "resources": {"workers": 0, "cpus_per_worker": 1},
        "tuning": {"budget": 2, "seeds": [100]},
        "variants": [{"name": "Base", "set": {"aux_loss": "none"}},
                     {"name": "+Cov", "set": {"aux_loss": "cov"}, "tune": {"alpha": [0.01, 1.0]}}]}))
    assert sweep(tmp_path, str(tuned_space)) == 0
    root = tmp_path / "sweeps" / "s"
    tuning = pd.read_parquet(root / "tuning" / "results")
    assert len(tuning) == 2 and set(tuning["seed"]) == {100} and set(tuning["alpha"]) == {0.01, 1.0}
    best = tuning.loc[tuning["val_auc_overall"].idxmax(), "alpha"]
    frame = pd.read_parquet(root / "results")
    assert sorted(zip(frame["variant"], frame["seed"])) == [("+Cov", 0), ("+Cov", 1), ("Base", 0), ("Base", 1)]
    assert set(frame.loc[frame["variant"] == "+Cov", "alpha"]) == {best}
    choices = json.loads((root / "tuned.json").read_text())
    assert choices["rows"][0]["chosen"] == {"alpha": best}
    out = capsys.readouterr().out
    assert "tuning: 1 rows x 2 configurations x 1 tuning seeds; 2 runs to do, 0 already stored" in out
    assert (root / "report" / "tuning.md").is_file() and "Tuning" in (root / "report" / "report.html").read_text()
    assert sweep(tmp_path, str(tuned_space)) == 0
    out = capsys.readouterr().out
    assert "2 runs to do" not in out and "0 runs to do, 2 already stored" in out and "0 trials to run" in out


def test_search_runs_optuna_trials_and_its_study_reloads(ray_cluster, tmp_path, capsys):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    assert run.main(["--space", "search_crocodile", "--storage", str(tmp_path / "sweeps"), "--name", "opt",
                     "--smoke-test", "--wandb", "off"]) == 0
    journal = tmp_path / "sweeps" / "opt" / "optuna.journal"
    study = optuna.load_study(study_name="opt", storage=JournalStorage(JournalFileBackend(str(journal))))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4 and {"alpha", "num_embeddings", "gating", "aux_loss"} <= set(complete[0].params)
    frame = pd.read_parquet(tmp_path / "sweeps" / "opt" / "results")
    assert len(frame) == 4 and set(frame["study"]) == {"search"}
    capsys.readouterr()
    assert run.main(["--space", "search_crocodile", "--storage", str(tmp_path / "sweeps"), "--name", "opt",
                     "--smoke-test", "--wandb", "off"]) == 0
    assert "0 search trials to run (4 of 4 already complete)" in capsys.readouterr().out

    # base_from: the best configuration of that search, replicated over seeds against a baseline.
    best = tmp_path / "best.yaml"
    best.write_text(yaml.safe_dump({"study": "replicate", "seeds": [0, 1], "base_from": {"sweep": "opt"},
                                    "reference": "MMoE", "variants": [TWO[0]]}))
    assert run.main(["--space", str(best), "--storage", str(tmp_path / "sweeps"), "--name", "best",
                     "--smoke-test", "--wandb", "off"]) == 0
    replicated = pd.read_parquet(tmp_path / "sweeps" / "best" / "results")
    assert sorted(set(replicated["variant"])) == ["MMoE", "best-1"] and len(replicated) == 4
    winner = frame.loc[frame["val_auc_overall"].idxmax()]
    chosen = replicated[replicated["variant"] == "best-1"].iloc[0]
    assert (chosen["gating"], chosen["aux_loss"], chosen["num_embeddings"]) == (
        winner["gating"], winner["aux_loss"], winner["num_embeddings"])
    assert chosen["alpha"] == pytest.approx(winner["alpha"])
    meta = json.loads((tmp_path / "sweeps" / "best" / "sweep.json").read_text())
    assert meta["comparisons"] == [{"variant": "best-1", "reference": "MMoE"}]


def test_search_logs_offline_wandb_runs_and_optuna_attributes_quietly(ray_cluster, tmp_path, capsys, monkeypatch):
    """The W&B and Optuna a researcher opens, read back from the files; the terminal stays short."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from sweeper import wandb_log

    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert run.main(["--space", "search_crocodile", "--storage", str(tmp_path / "sweeps"), "--name", "wb",
                     "--smoke-test", "--wandb", "offline"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines() + captured.err.splitlines()
    assert len(lines) <= 45 and "Traceback" not in captured.out + captured.err, lines
    sweep_dir = tmp_path / "sweeps" / "wb"
    assert f"log: {sweep_dir / 'sweep.log'}" in captured.out and (sweep_dir / "sweep.log").stat().st_size > 0
    assert f"wandb sync {sweep_dir}/wandb/wandb/offline-run-*" in captured.out and "all finished" in captured.out

    frame = pd.read_parquet(sweep_dir / "results")
    runs = {r.name: r for r in wandb_log.offline_runs(sweep_dir / "wandb")}
    trial_runs = {f"{v}-s{s}": (v, s) for v, s in zip(frame["variant"], frame["seed"])}
    assert set(runs) == {*trial_runs, "wb-report"}  # the sync glob covers every run, the report's too
    assert {r.group for r in runs.values()} == {"wb"} and all(r.exit_code == 0 for r in runs.values())
    row = frame.iloc[0]
    one = runs[f"{row['variant']}-s{row['seed']}"]
    assert one.job_type == "search"
    for key in ("alpha", "num_embeddings", "gating", "aux_loss", "aux_rows", "lr", "expert_hidden", "epochs",
                "variant", "seed", "sweep", "data", "git_commit", "cell"):
        assert key in one.config, key
    assert one.config["cell"] == row["cell"] and one.config["alpha"] == pytest.approx(row["alpha"])
    assert one.summary["test_auc_overall"] == pytest.approx(row["test_auc_overall"])
    assert [h["epoch"] for h in one.history] == [1] and "val_auc_overall" in one.history[0]

    tables = runs["wb-report"].tables()
    assert {"results", "summary", "best_configs", "importances"} <= set(tables)
    results = tables["results"]
    column = results["columns"].index("test_auc_overall")
    assert all(isinstance(r[column], float) for r in results["data"]) and len(results["data"]) == 4

    study = optuna.load_study(study_name="wb", storage=JournalStorage(JournalFileBackend(
        str(sweep_dir / "optuna.journal"))))
    assert study.metric_names == ["val_auc_overall"]
    for trial in study.trials:
        assert "aux_rows" not in trial.params  # one value: fixed, not searched
        attrs = trial.user_attrs
        assert attrs["variant"] == f"trial-{attrs['ray_trial_id']}" and attrs["seeds"] == [0]
        assert attrs["wandb_runs"] == [f"{attrs['variant']}-s0"] and attrs["wandb_runs"][0] in runs
        assert attrs["cell"] in set(frame["cell"])


def test_search_with_asha_prunes_without_losing_finished_trials(ray_cluster, tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = tmp_path / "asha.yaml"
    path.write_text(yaml.safe_dump({"study": "search", "seeds": [0], "base": {"epochs": 3, "patience": 3},
                                    "resources": {"cpus_per_worker": 1},
                                    "search": {"num_trials": 4, "max_concurrent": 2,
                                               "asha": {"enabled": True, "grace_period": 1, "reduction_factor": 2},
                                               "params": {"alpha": {"type": "loguniform", "low": 1e-4, "high": 1.0},
                                                          "gating": {"type": "choice", "values": ["pg", "peg"]}}}}))
    assert run.main(["--space", str(path), "--storage", str(tmp_path / "sweeps"), "--name", "asha", "--wandb", "off",
                     "--data", "synthetic:tiny", *SMALL_MODEL]) == 0
    study = optuna.load_study(study_name="asha", storage=JournalStorage(JournalFileBackend(
        str(tmp_path / "sweeps" / "asha" / "optuna.journal"))))
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 4
    frame = pd.read_parquet(tmp_path / "sweeps" / "asha" / "results")
    # Trials that ran all 3 epochs wrote their row; pruned ones (stopped at a rung) did not finish.
    assert 1 <= len(frame) <= 4 and set(frame["status"]) == {"ok"} and set(frame["epochs_run"]) == {3}


def test_in_process_and_ray_train_paths_give_the_same_metrics(ray_cluster, tmp_path):
    one = [TWO[1]]
    space = space_file(tmp_path, one, seeds=[0])
    assert sweep(tmp_path, space) == 0
    body = yaml.safe_load(Path(space).read_text())
    body["resources"] = {"workers": 1, "cpus_per_worker": 0.5}
    train_space = tmp_path / "train_space.yaml"
    train_space.write_text(yaml.safe_dump(body))
    assert run.main(["--space", str(train_space), "--storage", str(tmp_path / "sweeps"), "--name", "t",
                     "--smoke-test", "--wandb", "off", "num_embeddings=2"]) == 0
    a = pd.read_parquet(tmp_path / "sweeps" / "s" / "results").iloc[0]
    b = pd.read_parquet(tmp_path / "sweeps" / "t" / "results").iloc[0]
    assert (a["path"], b["path"]) == ("in_process", "ray_train") and b["status"] == "ok"
    metrics = [c for c in a.index if c.startswith(("val_", "test_"))]
    assert a[metrics].to_dict() == pytest.approx(b[metrics].to_dict(), nan_ok=True, abs=1e-6)


def test_run_py_copied_alone_runs(ray_cluster, tmp_path):
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    shutil.copy(REPO / "sweeper" / "run.py", alone / "run.py")
    space = space_file(tmp_path, TWO[:1])
    env = {**os.environ, "RAY_ADDRESS": ray_cluster}
    proc = subprocess.run([sys.executable, "run.py", "--space", space, "--storage", str(tmp_path / "sw"),
                           "--name", "alone", "--smoke-test", "--wandb", "off", "--seeds", "0"],
                          cwd=alone, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"cluster at {ray_cluster}" in proc.stdout
    assert len(pd.read_parquet(tmp_path / "sw" / "alone" / "results")) == 1


def test_smoke_sweep_on_prepared_real_sample(ray_cluster, tmp_path):
    from model.datasets.cli import main as datasets_main

    prepared = tmp_path / "kr"
    datasets_main(["prepare", "kuairand1k", "--merged", str(REPO / "tests/fixtures/kuairand/log_merged_sample_1k.csv"),
                   "--out", str(prepared)])
    space = space_file(tmp_path, TWO, seeds=[0])
    assert run.main(["--space", space, "--storage", str(tmp_path / "sweeps"), "--name", "real", "--smoke-test",
                     "--wandb", "off", "--data", f"kuairand1k:{prepared}", "batch_size=64", "aux_rows=32"]) == 0
    frame = pd.read_parquet(tmp_path / "sweeps" / "real" / "results")
    assert len(frame) == 2 and set(frame["status"]) == {"ok"} and "test_auc_S1" in frame.columns
    assert (tmp_path / "sweeps" / "real" / "report" / "report.html").exists()


def test_bad_space_fails_before_ray_starts(tmp_path, capsys, monkeypatch):
    from sweeper import tune_runner

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for a bad space file")

    monkeypatch.setattr(tune_runner, "connect", no_ray)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"study": "replicate", "variants": [{"name": "A", "set": {"gating": "moe"}}]}))
    assert run.main(["--space", str(path), "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: variants[0].set/grid: unknown gating 'moe'" in err
    assert run.main(["--space", str(path.with_name("missing.yaml"))]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run.main(["--smoke-test", "--data", "csv:x"]) == 2
    assert run.main(["--smoke-test", "alhpa=1"]) == 2
    assert "unknown config key 'alhpa'" in capsys.readouterr().err


def test_every_override_is_checked_even_when_the_variants_set_it(monkeypatch, our_stderr):
    from sweeper import tune_runner

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray must not start for a bad override")

    monkeypatch.setattr(tune_runner, "connect", no_ray)
    assert run.main(["--space", "table5_ablation", "gating=pgg"]) == 2
    assert our_stderr().splitlines() == [
        "error: override gating=pgg: unknown gating 'pgg'; valid: ['eg', 'peg', 'pg', 'standard'] "
        "(or 'none' for architectures without gates)"]
    assert run.main(["--space", "table5_ablation", "gating=pg"]) == 2
    err = our_stderr()
    assert len(err.splitlines()) == 1 and "override gating=pg has no effect: every variant" in err
    assert "MMoE: standard" in err
    assert run.main(["--space", "search_crocodile", "alpha=0.1"]) == 2
    assert "override alpha=0.1 has no effect: search.params.alpha" in our_stderr()
    assert run.main(["--space", "table5_ablation", "seed=3"]) == 2
    assert "use --seeds 3" in our_stderr()
    space, base, data, notes = run.plan(run.parse_args(["--space", "table4_losses", "--smoke-test", "aux_rows=128"]))
    assert notes == ["note: aux_rows=128 applies to 6 of 7 variants; +dCorr set aux_rows themselves"]


def test_help_lists_the_shipped_spaces_with_their_profiles(capsys):
    with pytest.raises(SystemExit):
        run.main(["--help"])
    out = capsys.readouterr().out
    assert "table5_ablation" in out and "Table 5: ablation of embedding" in out
    assert "[profiles: laptop, gpu, cluster]" in out and "{auto,online,offline,off}" in out
