"""Everything that touches Ray: connecting, trial trainables, Optuna search, progress, W&B.

Two trial paths, chosen by the space's `resources.workers`:
  0   the Tune trial itself runs `model.train` (in-process; seconds of overhead per trial);
  >=1 the Tune trial drives a Ray Train TorchTrainer with that many DDP workers, whose
      per-epoch metrics reach Tune through TuneReportCallback (Ray 2.60 Train V2).
"""
from __future__ import annotations

import dataclasses
import math
import os
import socket
import time
import uuid
from pathlib import Path

import ray
import torch
from ray import tune
from ray.tune import Callback

from model.config import RunConfig
from sweeper.space import Param, Resources, Search
from sweeper.store import ResultsStore, join, resolve
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
    return "local Ray started in-process"


# ---- trainables --------------------------------------------------------------------------------

def _job_from(config: dict, template: dict) -> Job:
    """The Tune config (a replicate job, or an Optuna sample) made into a Job."""
    trial_id = tune.get_context().get_trial_id() or ""
    if "job" in config:  # replicate: one (variant, seed) per trial
        return Job(**{**config["job"], "trial_id": trial_id})
    return Job(**{**template["job"], "variant": f"trial-{trial_id}", "factors": dict(config), "trial_id": trial_id})


def _where() -> dict:
    return {"node_id": ray.get_runtime_context().get_node_id(), "path": "in_process", "num_workers": 1}


def _device(gpus: float) -> str:
    return "cuda" if gpus > 0 and torch.cuda.is_available() else "cpu"


def inprocess_trainable(config: dict, template: dict):
    torch.set_num_threads(max(1, int(template["cpus"])))  # oversubscribed threads made trials 17x slower
    job = _job_from(config, template)
    summary = run_job(job, device=_device(template["gpus"]), report=tune.report, row_extra=_where())
    tune.report(summary)


def _worker_loop(loop_config: dict):
    import ray.train
    import ray.train.torch

    torch.set_num_threads(max(1, int(loop_config["cpus"])))
    job = Job(**loop_config["job"])
    rank = ray.train.get_context().get_world_rank()
    summary = run_job(job, device=ray.train.torch.get_device(), report=ray.train.report, write_rows=rank == 0,
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
        train_loop_config={"job": dataclasses.asdict(job), "cpus": template["cpus"]},
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
    """One line per finished or failed trial: counts, ETA and the best objective so far."""

    def __init__(self, total: int, metric: str, mode: str):
        self.total, self.metric, self.mode = total, metric, mode
        self.started = time.time()
        self.running = self.done = self.failed = 0
        self.best: tuple[float, str] | None = None
        self.last_print = self.started

    def on_trial_result(self, iteration, trials, trial, result, **info):
        # Long trials (minutes per epoch at paper scale) still show a heartbeat once a minute.
        if time.time() - self.last_print >= HEARTBEAT_S and "epoch" in result:
            self.running = sum(t.status == "RUNNING" for t in trials)
            self._print(f"{_label(trial)} epoch {result['epoch']}: {self.metric} {result.get('objective', math.nan):.4f}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running = sum(t.status == "RUNNING" for t in trials) - 1
        self.done += 1
        result = trial.last_result or {}
        value = result.get("objective")
        if value is not None and not math.isnan(value):
            if self.best is None or (value > self.best[0]) == (self.mode == "max"):
                self.best = (value, _label(trial))
        if result.get("seeds_failed"):
            self.failed += 1
        self._print(f"finished {_label(trial)}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running = sum(t.status == "RUNNING" for t in trials) - 1
        self.done += 1
        self.failed += 1
        self._print(f"FAILED {_label(trial)}")

    def _print(self, event: str):
        elapsed = time.time() - self.started
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        best = f"best {self.metric} {self.best[0]:.4f} ({self.best[1]})" if self.best else "best -"
        print(f"[{self.done}/{self.total} done, {self.running} running, {self.failed} with failures] "
              f"elapsed {_fmt(elapsed)}, ETA {_fmt(eta)} | {best} | {event}", flush=True)
        self.last_print = time.time()


def _trial_dirname(trial) -> str:
    job = trial.config["job"]
    safe = "".join(c if c.isalnum() or c in "-_=." else "_" for c in job["variant"])
    return f"{safe}-s{job['seeds'][0]}-{trial.trial_id}"


def _label(trial) -> str:
    job = trial.config.get("job")
    return f"{job['variant']} seed {job['seeds'][0]}" if job else f"trial {trial.trial_id}"


def _fmt(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


# ---- W&B ---------------------------------------------------------------------------------------

def wandb_callbacks(mode: str, sweep_name: str, local_dir: str | None) -> list:
    """One W&B run per trial (group = sweep, job_type = variant). Never raises: W&B is optional."""
    if mode == "off":
        return []
    try:
        from ray.air.integrations.wandb import WandbLoggerCallback

        os.environ["WANDB_MODE"] = mode  # the callback checks the environment, not its argument
        if local_dir:
            os.environ.setdefault("WANDB_DIR", local_dir)
            Path(os.environ["WANDB_DIR"]).mkdir(parents=True, exist_ok=True)

        class VariantWandb(WandbLoggerCallback):
            def log_trial_start(self, trial):
                job = trial.config.get("job") or {}
                self.kwargs["job_type"] = job.get("variant", "search")
                super().log_trial_start(trial)

        # mode and dir go to wandb.init in the logging actors, whose environment lacks WANDB_MODE.
        return [VariantWandb(project=os.environ.get("WANDB_PROJECT", "crocodile-sweeps"), group=sweep_name,
                             excludes=["done", "time_this_iter_s"], mode=mode,
                             **({"dir": os.environ["WANDB_DIR"]} if local_dir else {}))]
    except Exception as exc:  # noqa: BLE001
        print(f"W&B disabled: {type(exc).__name__}: {exc}")
        return []


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
             num_search_trials: int = 0) -> list:
    """Run the trials; returns Tune's ResultGrid errors as (job-or-None, error text) pairs."""
    template = {"job": dataclasses.asdict(template_job) if template_job else None,
                "train_storage": join(sweep_uri, "train")}
    trainable = trainable_for(resources, template)
    fs, local_root = resolve(sweep_uri)
    local_dir = local_root if "://" not in sweep_uri else None
    callbacks = wandb_callbacks(wandb_mode, sweep_name, f"{local_dir}/wandb" if local_dir else None)
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
    tuner = tune.Tuner(
        trainable, param_space=param_space, tune_config=tune_config,
        run_config=tune.RunConfig(name=f"tune-{uuid.uuid4().hex[:6]}", storage_path=sweep_uri, verbose=0,
                                  callbacks=[Progress(total, metric, mode), *callbacks],
                                  failure_config=tune.FailureConfig(max_failures=2)),
    )
    grid = tuner.fit()
    errors = []
    for result in grid:
        if result.error is not None:
            job = result.config.get("job") if result.config else None
            errors.append((Job(**job) if job else None, f"{type(result.error).__name__}: {result.error}"))
    return errors


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
