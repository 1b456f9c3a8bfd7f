"""Everything that touches Ray: connecting, trial trainables, Optuna search, progress, W&B.

Two trial paths, chosen by the space's `resources.workers`:
  0   the Tune trial itself runs `model.train` (in-process; seconds of overhead per trial);
  >=1 the Tune trial drives a Ray Train TorchTrainer with that many DDP workers, whose
      per-epoch metrics reach Tune through TuneReportCallback (Ray 2.60 Train V2).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import socket
import time
import uuid
import warnings
from pathlib import Path

import ray
import torch
from ray import tune
from ray.tune import Callback

from model.config import RunConfig
from sweeper import wandb_log
from sweeper.console import Console, ProgressDisplay
from sweeper.space import Param, Resources, Search, cell_key
from sweeper.store import ResultsStore, join, provenance, resolve
from sweeper.trial import Job, failed_row, run_job


# ---- connecting --------------------------------------------------------------------------------

def existing_cluster() -> str | None:
    """host:port of a live Ray cluster on this machine, or None.

    A stale ray_current_cluster file (left by a killed `ray start`) makes a plain ray.init()
    hang, so the address is only used when its GCS port answers.
    """
    path = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
    try:
        address = path.read_text().strip().splitlines()[0]
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=1):
            return address
    except (OSError, ValueError, IndexError):
        return None


def connect(address: str | None, *, with_dashboard: bool) -> str:
    """Join RAY_ADDRESS / --address / a running local cluster, else start Ray in-process."""
    if ray.is_initialized():
        return "already connected"
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target, logging_level="WARNING", log_to_driver=True)
        return f"cluster at {target}"
    found = existing_cluster()
    if found:
        # "auto" (not the explicit address) also picks up the cluster's token from ~/.ray/auth_token.
        ray.init(address="auto", logging_level="WARNING", log_to_driver=True)
        return f"cluster at {found}"
    # The dashboard lets Train V2 clean up the placement groups of stopped trials.
    ray.init(address="local", include_dashboard=with_dashboard, logging_level="WARNING")
    return STARTED_LOCAL


STARTED_LOCAL = "local Ray started in-process"


def disconnect(how: str) -> None:
    """Stop the Ray we started (its workers' last output then lands in the sweep log, not after
    the summary); leave a cluster we joined alone."""
    if how == STARTED_LOCAL and ray.is_initialized():
        ray.shutdown()


# ---- trainables --------------------------------------------------------------------------------

def _job_from(config: dict, template: dict) -> Job:
    """The Tune config (a replicate job, or an Optuna sample) made into a Job."""
    trial_id = tune.get_context().get_trial_id() or ""
    if "job" in config:  # replicate: one (variant, seed) per trial
        return Job(**{**config["job"], "trial_id": trial_id})
    return search_job(template["job"], config, trial_id)


def search_job(template_job: dict, sample: dict, trial_id: str) -> Job:
    """An Optuna sample as a Job: a variant of its own, named after the Ray trial."""
    return Job(**{**template_job, "variant": f"trial-{trial_id}", "factors": dict(sample), "trial_id": trial_id})


def _seed_runs(template: dict, job: Job) -> wandb_log.TrialLogger:
    target = wandb_log.Target(**template["wandb"]) if template.get("wandb") else None
    return wandb_log.TrialLogger(target, job_type=job.variant if job.study == "replicate" else "search",
                                 extra_config={"git_commit": provenance()["git_commit"]})


def _run_logged(job: Job, runs: wandb_log.TrialLogger, report, *, device, row_extra: dict,
                write_rows: bool = True) -> dict:
    """run_job with each seed's W&B run; a run left open by a stop (ASHA) or crash is finished."""
    def report_epoch(record: dict) -> None:
        runs.log_epoch(record)  # before report: a stopped trial's report raises SystemExit
        report(record)

    try:
        summary = run_job(job, device=device, report=report_epoch, write_rows=write_rows, row_extra=row_extra,
                          seed_hooks=runs)
    except BaseException as exc:
        runs.close("stopped" if isinstance(exc, SystemExit) else f"crashed: {type(exc).__name__}")
        raise
    finally:
        runs.shutdown()
    return {**summary, "wandb_runs": ",".join(runs.names), "wandb_error": runs.error}


def _where() -> dict:
    return {"node_id": ray.get_runtime_context().get_node_id(), "path": "in_process", "num_workers": 1}


def _device(gpus: float) -> str:
    return "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"


def inprocess_trainable(config: dict, template: dict):
    torch.set_num_threads(max(1, int(template["cpus"])))  # oversubscribed threads made trials 17x slower
    job = _job_from(config, template)
    summary = _run_logged(job, _seed_runs(template, job), tune.report, device=_device(template["gpus"]),
                          row_extra=_where())
    tune.report(summary)


def _worker_loop(loop_config: dict):
    import ray.train
    import ray.train.torch

    torch.set_num_threads(max(1, int(loop_config["cpus"])))
    job = Job(**loop_config["job"])
    rank = ray.train.get_context().get_world_rank()
    # W&B from rank 0 only: one run per seed, not one per worker.
    runs = _seed_runs(loop_config if rank == 0 else {}, job)
    summary = _run_logged(job, runs, ray.train.report, device=ray.train.torch.get_device(), write_rows=rank == 0,
                          row_extra={**_where(), "path": "ray_train", "num_workers": ray.train.get_context().get_world_size()})
    ray.train.report(summary)


def train_trainable(config: dict, template: dict):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    job = _job_from(config, template)
    gpus = template["gpus"]
    per_worker = {"CPU": template["cpus"], **({"GPU": gpus} if gpus else {})}
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"job": dataclasses.asdict(job), "cpus": template["cpus"], "wandb": template.get("wandb")},
        scaling_config=ScalingConfig(num_workers=template["workers"], use_gpu=gpus > 0,
                                     resources_per_worker=per_worker),
        run_config=RunConfig(name=f"train-{job.trial_id}-{uuid.uuid4().hex[:6]}",
                             storage_path=template["train_storage"], callbacks=[TuneReportCallback()]),
    )
    trainer.fit()


def trainable_for(resources: Resources, template: dict):
    """The wrapped trainable with its per-trial resources."""
    template = {**template, "workers": resources.workers, "cpus": resources.cpus_per_worker,
                "gpus": resources.gpus_per_worker}
    if resources.workers == 0:
        fn = tune.with_parameters(inprocess_trainable, template=template)
        return tune.with_resources(fn, {"cpu": resources.cpus_per_worker, "gpu": resources.gpus_per_worker})
    fn = tune.with_parameters(train_trainable, template=template)
    # The driver trial only waits on its workers: a small CPU share (a 0-CPU trial is rejected).
    return tune.with_resources(fn, {"cpu": 0.2})


# ---- progress ----------------------------------------------------------------------------------

HEARTBEAT_S = 60


class Progress(Callback):
    """Counts, ETA and the best objective so far, shown by a ProgressDisplay; a line per finished or
    failed trial, and a heartbeat for long trials."""

    def __init__(self, total: int, metric: str, mode: str, display: ProgressDisplay):
        self.total, self.metric, self.mode, self.display = total, metric, mode, display
        self.started = time.time()
        self.running = self.done = self.failed = 0
        self.best: tuple[float, str] | None = None
        self.last_print = self.started
        self.wandb_errors: list[str] = []

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running = sum(t.status == "RUNNING" for t in trials)
        self._show(None)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # Long trials (minutes per epoch at paper scale) still show a heartbeat once a minute.
        if time.time() - self.last_print >= HEARTBEAT_S and "epoch" in result:
            self.running = sum(t.status == "RUNNING" for t in trials)
            self.display.heartbeat(f"{_label(trial)} epoch {result['epoch']}: {self.metric} "
                                   f"{result.get('objective', math.nan):.4f}")
            self._show(None)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running = sum(t.status == "RUNNING" for t in trials) - 1
        self.done += 1
        result = trial.last_result or {}
        value = result.get("objective")
        if value is not None and not math.isnan(value):
            if self.best is None or (value > self.best[0]) == (self.mode == "max"):
                self.best = (value, _label(trial))
        if result.get("wandb_error"):
            self.wandb_errors.append(f"{_label(trial)}: {result['wandb_error']}")
        failed = result.get("seeds_failed", 0)
        if failed:
            self.failed += 1
            self._show(f"FAILED {_described(trial)}: {failed} of {failed + result.get('seeds_ok', 0)} seed(s) failed "
                       f"(cause in the results' error column)")
        else:
            shown = f"{self.metric} {value:.4f}" if value is not None and not math.isnan(value) else "no objective"
            self._show(f"finished {_described(trial)}: {shown}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running = sum(t.status == "RUNNING" for t in trials) - 1
        self.done += 1
        self.failed += 1
        self._show(f"FAILED {_described(trial)}: the trial crashed (traceback in the sweep log)")

    def on_experiment_end(self, trials, **info):
        self.display.close()
        if self.wandb_errors:
            self.display.console.warn(f"W&B logging failed in {len(self.wandb_errors)} trial(s), results are "
                                      f"unaffected; first: {self.wandb_errors[0]}")

    def _show(self, event: str | None):
        best = f"best {self.best[0]:.4f} ({self.best[1]})" if self.best else "best -"
        self.display.update(self.done, max(self.running, 0), self.failed, best, event)
        if event:
            self.last_print = time.time()


def _trial_dirname(trial) -> str:
    job = trial.config["job"]
    safe = "".join(c if c.isalnum() or c in "-_=." else "_" for c in job["variant"])
    return f"{safe}-s{job['seeds'][0]}-{trial.trial_id}"


def _label(trial) -> str:
    job = trial.config.get("job")
    return f"{job['variant']} seed {job['seeds'][0]}" if job else f"trial {trial.trial_id}"


def _described(trial) -> str:
    """The label, and for a search trial its sampled parameters (what a researcher compares)."""
    if trial.config.get("job"):
        return _label(trial)
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.config.items())
    return f"{_label(trial)} ({params})"



# ---- Optuna ------------------------------------------------------------------------------------

class OptunaAttrs(Callback):
    """Each Optuna trial's user attributes name its Ray trial, results cell, seeds and W&B runs, so
    the Optuna dashboard, the results rows and W&B can be matched up."""

    def __init__(self, searcher, template_job: Job, wandb_on: bool):
        self.searcher, self.template_job, self.wandb_on = searcher, template_job, wandb_on

    def on_trial_start(self, iteration, trials, trial, **info):
        # Ray keeps the Ray-trial -> Optuna-trial map privately; without it, attributes are skipped.
        optuna_trial = getattr(self.searcher, "_ot_trials", {}).get(trial.trial_id)
        if optuna_trial is None:
            return
        job = search_job(dataclasses.asdict(self.template_job), trial.config, trial.trial_id)
        attrs = {"ray_trial_id": trial.trial_id, "variant": job.variant, "cell": cell_key(job.config(0).flat()),
                 "seeds": list(job.seeds)}
        if self.wandb_on:
            attrs["wandb_runs"] = [wandb_log.run_name(job.variant, seed) for seed in job.seeds]
        try:
            for key, value in attrs.items():
                optuna_trial.set_user_attr(key, value)
        except Exception as exc:  # noqa: BLE001 - bookkeeping must never stop a search
            print(f"Optuna user attributes not set for {trial.trial_id}: {type(exc).__name__}: {exc}")


# ---- the sweep ---------------------------------------------------------------------------------

def optuna_space(params: tuple[Param, ...]) -> dict:
    out = {}
    for p in params:
        if p.kind == "loguniform":
            out[p.name] = tune.loguniform(p.low, p.high)
        elif p.kind == "uniform":
            out[p.name] = tune.uniform(p.low, p.high)
        elif p.kind == "int":
            out[p.name] = tune.randint(int(p.low), int(p.high) + 1)
        else:
            out[p.name] = tune.choice(list(p.values))
    return out


def run_tune(*, jobs: list[Job] | None, search: Search | None, template_job: Job | None, resources: Resources,
             sweep_uri: str, sweep_name: str, wandb_mode: str, optuna_journal: str | None,
             num_search_trials: int = 0, console: Console | None = None) -> list:
    """Run the trials; returns Tune's ResultGrid errors as (job-or-None, error text) pairs.

    wandb_mode: online / offline / off; each trial logs its own runs (sweeper.wandb_log).
    """
    console = console or Console()
    fs, local_root = resolve(sweep_uri)
    local_dir = local_root if "://" not in sweep_uri else None
    target = wandb_log.target_for(wandb_mode, sweep_name, local_dir)
    template = {"job": dataclasses.asdict(template_job) if template_job else None,
                "train_storage": join(sweep_uri, "train"), "wandb": wandb_log.target_dict(target)}
    trainable = trainable_for(resources, template)
    callbacks = []
    if search is None:
        param_space = {"job": tune.grid_search([dataclasses.asdict(j) for j in jobs])}
        total, metric, mode = len(jobs), "val_auc_overall", "max"
        tune_config = tune.TuneConfig(num_samples=1, max_concurrent_trials=resources.max_concurrent or None,
                                      reuse_actors=True, trial_dirname_creator=_trial_dirname)
    else:
        import optuna
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend
        from ray.tune.schedulers import ASHAScheduler
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        storage = JournalStorage(JournalFileBackend(optuna_journal))
        # Created here (OptunaSearch then loads it) to name the objective for Optuna's dashboard.
        study = optuna.create_study(study_name=sweep_name, storage=storage, load_if_exists=True,
                                    direction="maximize" if search.mode == "max" else "minimize")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([search.metric])
        searcher = OptunaSearch(metric="objective", mode=search.mode, study_name=sweep_name, storage=storage,
                                sampler=optuna.samplers.TPESampler(seed=search.sampler_seed))
        scheduler = None
        if search.asha:
            # Tune's iteration count restarts on restore; the epoch we report does not. max_t lies
            # beyond the last epoch: ASHA stops a trial at max_t even when it is about to finish,
            # and a stopped trial never writes its results row. Pruned trials (stopped at a rung)
            # are unfinished by design and leave no row; Optuna keeps their truncated value.
            epochs = RunConfig().with_overrides(template_job.base).train.epochs
            scheduler = ASHAScheduler(time_attr="epoch", metric="objective", mode=search.mode, max_t=epochs + 1,
                                      grace_period=search.grace_period, reduction_factor=search.reduction_factor)
        param_space = optuna_space(search.params)
        total, metric, mode = num_search_trials, search.metric, search.mode
        tune_config = tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=search.max_concurrent),
                                      scheduler=scheduler, num_samples=num_search_trials, reuse_actors=True)
        callbacks.append(OptunaAttrs(searcher, template_job, wandb_on=target is not None))
    progress = Progress(total, metric, mode, ProgressDisplay(console, total))
    tuner = tune.Tuner(
        trainable, param_space=param_space, tune_config=tune_config,
        run_config=tune.RunConfig(name=f"tune-{uuid.uuid4().hex[:6]}", storage_path=sweep_uri,
                                  verbose=1 if console.verbose else 0, callbacks=[progress, *callbacks],
                                  failure_config=tune.FailureConfig(max_failures=2)),
    )
    try:
        with _without_tune_loggers():
            grid = tuner.fit()
    finally:
        progress.display.close()
    errors = []
    for result in grid:
        if result.error is not None:
            job = result.config.get("job") if result.config else None
            errors.append((Job(**job) if job else None, f"{type(result.error).__name__}: {result.error}"))
    return errors


@contextlib.contextmanager
def _without_tune_loggers():
    """No progress.csv, result.json or TensorBoard events per trial: the Parquet results are the
    record. Tune reads this when the Tuner builds its callbacks; TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=0
    in the environment brings them back."""
    before = os.environ.get("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS")
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = before if before is not None else "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)


def store_trial_errors(errors: list, sweep_uri: str) -> int:
    """Trials that died before writing their own rows get a failed row per missing seed."""
    store = ResultsStore(sweep_uri)
    have = set().union(*store.stored())
    count = 0
    for job, error in errors:
        if job is None:
            continue
        for seed in job.seeds:
            row = failed_row(job, seed, error)
            if (row["cell"], seed) not in have:
                store.write_row(row)
                count += 1
    return count
