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
import secrets
import socket
import stat
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

import pyarrow.fs as pafs
import ray
import torch
from ray import tune
from ray.tune import Callback
from ray.tune.search import Searcher

from model.config import RunConfig
from sweeper import wandb_log
from sweeper.claims import Claims
from sweeper.console import Console, ProgressDisplay
from sweeper.errors import describe, is_infrastructure
from sweeper.preflight import DRIVER_CPU, ClusterShape, Node, autoscaler_nodes
from sweeper.space import Param, Resources, Search, cell_key
from sweeper.store import ResultsStore, join, provenance, resolve
from sweeper.trial import Checkpoint, Job, failed_row, run_job


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
        with _loopback_node(target):
            ray.init(address=target, logging_level="WARNING", log_to_driver=True)
        return f"cluster at {target}"
    found = existing_cluster()
    if found:
        # "auto" (not the explicit address) also picks up the cluster's token from ~/.ray/auth_token.
        with _loopback_node(found):
            ray.init(address="auto", logging_level="WARNING", log_to_driver=True)
        return f"cluster at {found}"
    token = ensure_local_token()
    start_local(with_dashboard=with_dashboard)
    return f"{STARTED_LOCAL}, listening on 127.0.0.1 only, token auth ({token})"


def start_local(*, with_dashboard: bool, **init_args) -> None:
    """Ray in this process, reachable from this machine only, with token auth on.

    Ray 2.60 binds its GCS, raylet, worker, agent and dashboard servers to the node's IP address,
    which it takes to be 127.0.0.1 on single-machine platforms (see _loopback_node): then nothing
    listens on another interface (tests/sweeper/test_local_ray.py checks)."""
    from ray._private.authentication.authentication_token_setup import _enable_token_auth

    _enable_token_auth()  # RAY_AUTH_MODE=token for this process (its cached config too) and its children
    with _loopback_node("127.0.0.1"):
        # The dashboard lets Train V2 clean up the placement groups of stopped trials.
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=with_dashboard,
                 dashboard_host="127.0.0.1", logging_level="WARNING", **init_args)


@contextmanager
def _loopback_node(address: str):
    """For an address on 127.0.0.1: Ray's single-machine mode while ray.init runs.

    Ray replaces 127.0.0.1 by the machine's network address unless `ENABLE_RAY_CLUSTER` is off (its
    switch for macOS and Windows, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0): off, a new node binds to
    127.0.0.1, and a client of such a node reaches it (another shell: set that variable)."""
    from ray._private import ray_constants

    if not address.startswith(("127.", "localhost")):
        yield
        return
    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def ensure_local_token() -> str:
    """The token the local Ray uses: RAY_AUTH_TOKEN, else the file RAY_AUTH_TOKEN_PATH or
    ~/.ray/auth_token, created (or tightened) to mode 0600 so no other user can read it."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "token from RAY_AUTH_TOKEN"
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token").expanduser()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)
            return f"{path}, now mode 0600"
        return str(path)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return f"{path}, new, mode 0600"


def cluster_shape(local: bool) -> ClusterShape:
    """The nodes of the connected cluster (alive now), plus what its autoscaler may add."""
    nodes = tuple(Node(float(n["Resources"].get("CPU", 0)), float(n["Resources"].get("GPU", 0)))
                  for n in ray.nodes() if n.get("Alive"))
    return ClusterShape(nodes=nodes, may_add=() if local else autoscaler_nodes())


STARTED_LOCAL = "local Ray started in-process"


def disconnect(how: str) -> None:
    """Stop the Ray we started (its workers' last output then lands in the sweep log, not after
    the summary); leave a cluster we joined alone."""
    if how.startswith(STARTED_LOCAL) and ray.is_initialized():
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
                write_rows: bool = True, resume: Checkpoint | None = None) -> dict:
    """run_job (with per-epoch checkpoints) and each seed's W&B run; a run left open by a stop
    (ASHA) or crash is finished."""
    def report_epoch(record: dict, checkpoint: Checkpoint | None) -> None:
        runs.log_epoch(record)  # before report: a stopped trial's report raises SystemExit
        report(record, checkpoint)

    try:
        summary = run_job(job, device=device, report=report_epoch, write_rows=write_rows, row_extra=row_extra,
                          seed_hooks=runs, resume=resume, checkpoints=True)
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


def reporter(report_fn, checkpoint_cls):
    """report(record, checkpoint) for run_job through Tune's or Train's report: the trial's state
    goes to the sweep's storage with the epoch's metrics, so a retried trial goes on from there."""
    def report(record: dict, checkpoint: Checkpoint | None) -> None:
        if checkpoint is None:
            report_fn(record)
            return
        with tempfile.TemporaryDirectory(prefix="crocodile-ckpt-") as folder:
            checkpoint.save(folder)
            report_fn(record, checkpoint=checkpoint_cls.from_directory(folder))  # uploaded before it returns
    return report


def restored(checkpoint) -> Checkpoint | None:
    """The trial's Checkpoint from Ray's (None on a first try)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return Checkpoint.load(folder)


def _store_failure(job: Job, exc: BaseException, row_extra: dict) -> dict:
    """A trial that failed outside training (setup, a bug): its unstored seeds are stored failed at
    once; retrying would fail the same way."""
    store, error = ResultsStore(job.sweep_uri), describe(exc)
    for seed in job.seeds:
        row = failed_row(job, seed, error)
        if not store.has_row(row["cell"], seed, job.attempt(seed)):
            store.write_row({**row, **row_extra}, job.schema)
    return {"objective": math.nan, "seeds_ok": 0, "seeds_failed": len(job.seeds), "done": True}


def _quiet_checkpoint_logs() -> None:
    """Ray logs every persisted checkpoint at INFO: one line per trial and epoch."""
    import logging

    for name in ("ray.train._internal.storage", "ray.train.v2._internal.execution.storage"):
        logging.getLogger(name).setLevel(logging.WARNING)


def inprocess_trainable(config: dict, template: dict):
    torch.set_num_threads(max(1, int(template["cpus"])))  # oversubscribed threads made trials 17x slower
    _quiet_checkpoint_logs()
    job = _job_from(config, template)
    try:
        summary = _run_logged(job, _seed_runs(template, job), reporter(tune.report, tune.Checkpoint),
                              device=_device(template["gpus"]), row_extra=_where(),
                              resume=restored(tune.get_checkpoint()))
    except Exception as exc:  # noqa: BLE001 - only infrastructure failures go to Ray's retries
        if is_infrastructure(exc):
            raise
        summary = _store_failure(job, exc, _where())
    tune.report(summary)


def _worker_loop(loop_config: dict):
    import ray.train
    import ray.train.torch

    torch.set_num_threads(max(1, int(loop_config["cpus"])))
    _quiet_checkpoint_logs()
    job = Job(**loop_config["job"])
    context = ray.train.get_context()
    rank = context.get_world_rank()
    where = {**_where(), "path": "ray_train", "num_workers": context.get_world_size()}

    def report(record: dict, checkpoint: Checkpoint | None) -> None:
        # Every rank reports each epoch (Train syncs on it); rank 0 alone carries the state.
        reporter(ray.train.report, ray.train.Checkpoint)(record, checkpoint if rank == 0 else None)

    # W&B from rank 0 only: one run per seed, not one per worker.
    runs = _seed_runs(loop_config if rank == 0 else {}, job)
    try:
        summary = _run_logged(job, runs, report, device=ray.train.torch.get_device(), write_rows=rank == 0,
                              row_extra=where, resume=restored(ray.train.get_checkpoint()))
    except Exception as exc:  # noqa: BLE001 - only infrastructure failures go to Train's retries
        if is_infrastructure(exc):
            raise
        summary = _store_failure(job, exc, where) if rank == 0 else {"done": True}
    ray.train.report(summary)


TRAIN_RETRIES = 2  # worker-group failures (a worker's node lost) and startup timeouts, per Tune try


def train_trainable(config: dict, template: dict):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
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
        # One name per Tune trial: a retry of the trial (its driver's node lost) finds the Train
        # run's checkpoints in storage and goes on from the last epoch. Every retry is bounded:
        # Train's default retries a worker group that cannot start forever.
        run_config=RunConfig(name=f"train-{job.trial_id}", storage_path=template["train_storage"],
                             callbacks=[TuneReportCallback()], checkpoint_config=CheckpointConfig(num_to_keep=1),
                             failure_config=FailureConfig(max_failures=TRAIN_RETRIES,
                                                          controller_failure_limit=TRAIN_RETRIES,
                                                          max_preemption_failures=10)),
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
    return tune.with_resources(fn, {"cpu": DRIVER_CPU})


# ---- progress ----------------------------------------------------------------------------------

HEARTBEAT_S = 60


def _running_besides(trials, ended) -> int:
    # Whether Tune has already marked the ended trial TERMINATED/ERROR when it calls back varies;
    # counting the others is right either way (a "- 1" was not, once the status had changed).
    return sum(t.status == "RUNNING" and t is not ended for t in trials)


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
        self.running = _running_besides(trials, trial)
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
        self.running = _running_besides(trials, trial)
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


class DropCheckpoints(Callback):
    """A trial's per-epoch checkpoints only serve to resume it: once it has ended (its rows are stored,
    or it gave up) they are deleted, Tune's and its Ray Train run's (several times the model's size)."""

    def __init__(self, sweep_uri: str):
        self.fs, root = resolve(sweep_uri)
        self.train_root = f"{root}/train"

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._drop(trial)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._drop(trial)

    def _drop(self, trial) -> None:
        for fs, folder in ((trial.storage.storage_filesystem, trial.path),
                           (self.fs, f"{self.train_root}/train-{trial.trial_id}")):
            try:
                infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
                for info in infos:
                    if info.type == pafs.FileType.Directory and info.base_name.startswith("checkpoint_"):
                        fs.delete_dir(info.path)
            except OSError as exc:  # storage hiccup: a few stale checkpoints, never a failed sweep
                print(f"could not delete checkpoints under {folder}: {exc}", flush=True)


# ---- W&B ---------------------------------------------------------------------------------------

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
             num_search_trials: int = 0, max_concurrent: int = 0, claims: Claims | None = None,
             console: Console | None = None, stop=None) -> list:
    """Run the trials; returns Tune's ResultGrid errors as (job-or-None, error text) pairs.

    Replicate jobs are handed to Tune one at a time, each claimed for this driver just before it
    starts (claims; see ClaimingSearcher); jobs another driver holds are waited for outside Tune
    (wait_for_others), so this driver's idle trial actors never hold the CPUs the other driver's
    trials wait for. max_concurrent caps the trials at once (0: no cap). wandb_mode: online /
    offline / off; each trial logs its own runs (sweeper.wandb_log). stop: a signals.Stop; once it
    names a signal nothing more starts.
    """
    console = console or Console()
    # Keeping one checkpoint per trial makes Tune snapshot its (small) state at every epoch, which it
    # warns about each time; that cost is the price of resuming a lost trial at its last epoch.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    fs, local_root = resolve(sweep_uri)
    local_dir = local_root if "://" not in sweep_uri else None
    target = wandb_log.target_for(wandb_mode, sweep_name, local_dir)
    template = {"job": dataclasses.asdict(template_job) if template_job else None,
                "train_storage": join(sweep_uri, "train"), "wandb": wandb_log.target_dict(target)}
    trainable = trainable_for(resources, template)
    callbacks = []

    def fit(param_space, tune_config, total, metric, mode) -> list:
        progress = Progress(total, metric, mode, ProgressDisplay(console, total))
        tuner = tune.Tuner(
            trainable, param_space=param_space, tune_config=tune_config,
            run_config=tune.RunConfig(name=f"tune-{uuid.uuid4().hex[:6]}", storage_path=sweep_uri,
                                      verbose=1 if console.verbose else 0,
                                      callbacks=[progress, DropCheckpoints(sweep_uri), *callbacks],
                                      # Only infrastructure failures reach Tune (trials store the rest).
                                      failure_config=tune.FailureConfig(max_failures=2),
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=1)),
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
                errors.append((Job(**job) if job else None, describe(result.error)))
        return errors

    if search is None:
        claims, store, errors, remaining = claims or Claims(sweep_uri), ResultsStore(sweep_uri), [], list(jobs)
        while remaining and not (stop is not None and stop.signal):
            searcher = ClaimingSearcher(remaining, claims, store)
            tune_config = tune.TuneConfig(search_alg=searcher, num_samples=len(remaining),
                                          max_concurrent_trials=max_concurrent or None,
                                          reuse_actors=True, trial_dirname_creator=_trial_dirname)
            errors += fit({}, tune_config, len(remaining), "val_auc_overall", "max")
            remaining = wait_for_others(searcher.pending, claims, store, console, stop)
        return errors
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
        limit = min(search.max_concurrent, max_concurrent) if max_concurrent else search.max_concurrent
        tune_config = tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=limit),
                                      scheduler=scheduler, num_samples=num_search_trials, reuse_actors=True)
        callbacks.append(OptunaAttrs(searcher, template_job, wandb_on=target is not None))
    return fit(param_space, tune_config, total, metric, mode)


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
    count = 0
    for job, error in errors:
        if job is None:
            continue
        for seed in job.seeds:
            row = failed_row(job, seed, error)
            if not store.has_row(row["cell"], seed, job.attempt(seed)):
                store.write_row(row, job.schema)
                count += 1
    return count


# ---- cell claims -------------------------------------------------------------------------------

def job_keys(job: Job) -> list[str]:
    """The claim keys of a replicate job: one per (cell, seed) it trains."""
    from sweeper.space import cell_key

    return [f"{cell_key(job.config(seed).flat())}-s{seed}" for seed in job.seeds]


def job_stored(job: Job, store: ResultsStore) -> bool:
    """Every seed of the job has a row of this attempt or a later one (a listing, no read)."""
    from sweeper.space import cell_key

    return all(store.has_row(cell_key(job.config(seed).flat()), seed, job.attempt(seed)) for seed in job.seeds)


class ClaimingSearcher(Searcher):
    """Replicate jobs for Tune, one at a time, each claimed for this driver just before its trial.

    A job that another live driver holds is skipped (left in `pending`), one that got its rows
    meanwhile is dropped; the search finishes when no pending job can be claimed now. The caller
    waits for the others outside Tune (wait_for_others), then runs what is left."""

    def __init__(self, jobs: list[Job], claims: Claims, store: ResultsStore):
        super().__init__(metric="objective", mode="max")
        self.pending, self.claims, self.store = list(jobs), claims, store
        self.running: dict[str, list[str]] = {}

    def suggest(self, trial_id: str):
        for job in list(self.pending):
            keys = job_keys(job)
            if not self._claim(keys):
                continue
            self.pending.remove(job)
            if job_stored(job, self.store):  # stored by another driver since we planned
                for key in keys:
                    self.claims.release(key)
                continue
            self.running[trial_id] = keys
            return {"job": dataclasses.asdict(job)}
        return Searcher.FINISHED

    def _claim(self, keys: list[str]) -> bool:
        """All keys, or none (a job of several seeds is claimed whole)."""
        taken = []
        for key in keys:
            if self.claims.try_claim(key) is not None:
                for done in taken:
                    self.claims.release(done)
                return False
            taken.append(key)
        return True

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        for key in self.running.pop(trial_id, []):
            self.claims.release(key)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the results store is the state, and the next run plans from it."""

    def restore(self, checkpoint_path: str) -> None:
        """See save."""


def wait_for_others(jobs: list[Job], claims: Claims, store: ResultsStore, console: Console, stop,
                    poll_s: float = 5.0) -> list[Job]:
    """Wait (outside Tune: nothing held) while every job left is another live driver's; return the
    jobs still without rows once one of them is free (its driver died), [] when all are stored."""
    announced = set()
    while jobs and not (stop is not None and stop.signal):
        jobs = [job for job in jobs if not job_stored(job, store)]
        holders = {key: claims.holder_of(key) for job in jobs for key in job_keys(job)}
        if any(holders[key] is None for job in jobs for key in job_keys(job)):
            return jobs  # free again: the next round claims them
        for holder in {h.id: h for h in holders.values() if h is not None}.values():
            if holder.id not in announced:
                held = sum(h is not None and h.id == holder.id for h in holders.values())
                console.line(f"waiting for {held} (cell, seed)s that another driver runs ({holder.describe()})")
                announced.add(holder.id)
        time.sleep(poll_s)
    return []
