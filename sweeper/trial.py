"""One sweep trial without Ray: train a configuration for its seeds and store one row per seed.

Ray Tune (in-process path) and Ray Train workers both call `run_job`; so can a plain script.
A seed whose training raises (NaN loss, out of memory, bad config) is stored as failed with its
cause and the next seed goes on; so is every seed when the data cannot load. None of these is
raised to Ray, so Ray never retries what fails the same way every time: only infrastructure
failures (sweeper/errors.py) propagate, and Ray's retry continues from the last checkpoint.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch

from model.checkpoint import TrainState, artefact_bytes
from model.config import RunConfig
from model.data import MultiDomainData
from model.datasets import load_data
from model.train import train
from sweeper.errors import describe, is_infrastructure
from sweeper.schema import row_schema
from sweeper.space import cell_key
from sweeper.store import FAILED, OK, ResultsStore, provenance

CHECKPOINT_FILE = "trial_state.pt"
# report(record, checkpoint): every epoch's record; checkpoint is None, or the Checkpoint to save with it.
Report = Callable[[dict, "Checkpoint | None"], None]


class SeedHooks(Protocol):
    """Told when each seed starts (its identity columns), of its epochs, and when it ends (its
    stored row), e.g. W&B. Seed-batched seeds are told all three once the seed has ended."""

    def start_seed(self, identity: dict) -> None: ...

    def log_epoch(self, record: dict) -> None: ...

    def end_seed(self, row: dict) -> None: ...

_DATA_CACHE: dict[str, MultiDomainData] = {}


@dataclass(frozen=True)
class Job:
    """The work of one trial. factors: flat config overrides on top of base; seeds run in order.

    attempts[i] numbers the row of seeds[i] (1 + the attempts stored before); domains and bayes fix
    the metric columns of the results schema (sweeper/schema.py)."""

    sweep: str
    study: str
    variant: str
    factors: dict
    base: dict
    seeds: tuple[int, ...]
    data: str
    sweep_uri: str
    objective: str = "val_auc_overall"
    trial_id: str = ""
    attempts: tuple[int, ...] = ()
    domains: tuple[str, ...] = ()
    bayes: bool = False
    keep_models: bool = True
    seed_batch: int = 1  # > 1: up to this many seeds train together as one stacked model (model/seed_batch.py)

    def config(self, seed: int) -> RunConfig:
        return RunConfig().with_overrides({**self.base, **self.factors, "seed": seed})

    def attempt(self, seed: int) -> int:
        return self.attempts[list(self.seeds).index(seed)] if self.attempts else 1

    @property
    def schema(self):
        return row_schema(tuple(self.domains), bool(self.bayes))


@dataclass(frozen=True)
class Checkpoint:
    """A trial's progress: the seed in training and its TrainState after the last epoch."""

    seed: int
    state: TrainState

    def save(self, folder: str | Path) -> None:
        payload = {"seed": self.seed, "state": self.state.to_bytes()}
        torch.save(payload, Path(folder) / CHECKPOINT_FILE)

    @classmethod
    def load(cls, folder: str | Path) -> "Checkpoint | None":
        path = Path(folder) / CHECKPOINT_FILE
        if not path.is_file():
            return None
        payload = torch.load(path, map_location="cpu", weights_only=True)
        return cls(seed=int(payload["seed"]), state=TrainState.from_bytes(payload["state"]))


def cached_data(spec: str) -> MultiDomainData:
    """Datasets are loaded once per process: Tune reuses trial actors, so later trials pay nothing."""
    if spec not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[spec] = load_data(spec)
    return _DATA_CACHE[spec]


def run_job(job: Job, *, device: str | torch.device = "cpu", report: Report | None = None,
            write_rows: bool = True, row_extra: dict | None = None, resume: Checkpoint | None = None,
            checkpoints: bool = False, seed_hooks: SeedHooks | None = None) -> dict:
    """Train every seed of the job, storing each as soon as it ends; return the trial summary.

    report(record, checkpoint) receives every epoch's record plus `seed`, `epoch` and `objective`
    (the monitored validation metric) and, with checkpoints, the trial's Checkpoint to persist with
    it; resume continues the seed it names from its state. A seed already stored by an earlier try
    of this trial is not trained again. The summary's `objective` is the mean over the seeds that
    ran ok. write_rows is False on every DDP rank but 0; row_extra adds columns (e.g. the node id).
    seed_hooks hear of each seed's start and of its row once stored.
    """
    store = ResultsStore(job.sweep_uri)
    try:
        data = cached_data(job.data)
    except Exception as exc:  # noqa: BLE001 - bad data fails every seed the same way: store, never retry
        if is_infrastructure(exc):
            raise
        error = describe(exc)
        for seed in job.seeds:
            if write_rows and not store.has_row(_cell(job, seed), seed, job.attempt(seed)):
                store.write_row({**failed_row(job, seed, error), **(row_extra or {}), "device": str(device)},
                                job.schema)
        return {"objective": math.nan, "seeds_ok": 0, "seeds_failed": len(job.seeds), "done": True}

    # The planner fixes the metric columns (job.domains); a job made by hand takes its data's.
    schema = job.schema if job.domains else row_schema(data.domain_names, data.truth is not None)
    scores: list[float] = []
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if job.seed_batch > 1 and not distributed:
        pending = []
        for seed in job.seeds:
            earlier = store.read_row(_cell(job, seed), seed, job.attempt(seed))
            if earlier is None:
                pending.append(seed)
            elif earlier["status"] == OK:  # stored by an earlier try of this trial
                scores.append(float(earlier[job.objective]))
        for start in range(0, len(pending), job.seed_batch):
            scores += _run_seed_group(job, tuple(pending[start:start + job.seed_batch]), data, schema, store,
                                      device=device, report=report, write_rows=write_rows, row_extra=row_extra,
                                      seed_hooks=seed_hooks)
        objective = sum(scores) / len(scores) if scores else math.nan
        return {"objective": objective, "seeds_ok": len(scores), "seeds_failed": len(job.seeds) - len(scores),
                "done": True}
    for seed_index, seed in enumerate(job.seeds):
        config = job.config(seed)
        flat = config.flat()
        cell, attempt = cell_key(flat), job.attempt(seed)
        earlier = store.read_row(cell, seed, attempt)
        if earlier is not None:  # this trial was retried after a crash: the seed is done
            if earlier["status"] == OK:
                scores.append(float(earlier[job.objective]))
            continue
        row = {**_identity(job, seed, flat), "device": str(device), **(row_extra or {})}
        started = time.time()
        if seed_hooks is not None:
            seed_hooks.start_seed(row)
        last: dict = {}

        def on_epoch(epoch: int, record: dict, seed=seed, seed_index=seed_index):
            last.clear()
            last.update({**record, "seed": seed, "seed_index": seed_index, "objective": record[job.objective]})
            if report is not None and not checkpoints:
                report(dict(last), None)

        def on_state(state: TrainState, seed=seed):
            report(dict(last), Checkpoint(seed=seed, state=state))

        state = resume.state if resume is not None and resume.seed == seed else None
        try:
            result = train(config, data, device=device, on_epoch=on_epoch,
                           on_state=on_state if checkpoints and report is not None else None, resume=state)
        except Exception as exc:  # noqa: BLE001 - any training failure is data, not a crash
            if is_infrastructure(exc):
                raise
            result = exc
        objective = _store_outcome(job, row, result, started=started, data=data, store=store, schema=schema,
                                   flat=flat, cell=cell, seed=seed, attempt=attempt, write_rows=write_rows)
        if objective is not None:
            scores.append(objective)
        if seed_hooks is not None:
            seed_hooks.end_seed(row)
    objective = sum(scores) / len(scores) if scores else math.nan
    return {"objective": objective, "seeds_ok": len(scores), "seeds_failed": len(job.seeds) - len(scores),
            "done": True}


def _store_outcome(job: Job, row: dict, outcome, *, started: float, data: MultiDomainData, store: ResultsStore,
                   schema, flat: dict, cell: str, seed: int, attempt: int, write_rows: bool) -> float | None:
    """Complete a seed's row with its RunResult (or the exception it failed with) and provenance, and
    store it. Returns the seed's objective when it ended ok."""
    failed = isinstance(outcome, BaseException)
    if failed:
        row |= {"status": FAILED, "error": describe(outcome), "wall_time_s": time.time() - started}
    else:
        row |= _ok_columns(job, outcome, data, store, cell, seed, attempt, flat, write_rows)
    row |= {"finished_at": time.time(), **provenance()}
    if write_rows:
        store.write_row(row, schema)
    return None if failed else outcome.metrics[job.objective]


def _ok_columns(job: Job, result, data: MultiDomainData, store: ResultsStore, cell: str, seed: int, attempt: int,
                flat: dict, write_rows: bool) -> dict:
    """A finished seed's columns: metrics, run facts, diagnostics; beside the row its diagnostics JSON
    and (kept models) its best-epoch weights."""
    out = {"status": OK, "error": "", **result.metrics, "best_epoch": result.best_epoch,
           "epochs_run": result.epochs_run, "wall_time_s": result.wall_time_s,
           "samples_per_s": result.samples_per_s, "resumed_from_epoch": result.resumed_from_epoch}
    if write_rows and job.keep_models and result.best_state is not None:
        name = f"models/{cell}-s{seed}-a{attempt}.pt"
        blob = artefact_bytes(result.best_state, flat, vocab_sizes=data.vocab_sizes,
                              domain_names=data.domain_names, field_names=data.field_names, data=job.data,
                              metrics=result.metrics, epoch=result.best_epoch)
        store.write_bytes(name, blob)
        out |= {"model_path": name, "model_bytes": len(blob)}
    out |= {**result.diagnostics, "diagnostics_s": result.diagnostics_s, "diagnostics_path": ""}
    if write_rows and result.diagnostics:  # tens of kB: kept even when the models are not
        name = f"diagnostics/{cell}-s{seed}-a{attempt}.json"
        store.write_bytes(name, diagnostics_artefact(result))
        out["diagnostics_path"] = name
    return out


def _run_seed_group(job: Job, seeds: tuple[int, ...], data: MultiDomainData, schema, store: ResultsStore, *,
                    device, report: Report | None, write_rows: bool, row_extra: dict | None,
                    seed_hooks: SeedHooks | None) -> list[float]:
    """Train seeds together (model/seed_batch.py); store each seed's row as soon as it stops.

    Returns the objectives of the seeds that ended ok. Epoch records go to report as they come (no
    checkpoints: a retried group trains its unstored seeds again from the start); the seed hooks
    hear of a seed's start, epochs and row once it has ended, so each seed still gets its own run."""
    from model.seed_batch import train_seeds  # torch.func: only trials that batch seeds need it

    config = job.config(seeds[0])
    started, histories, scores = time.time(), {seed: [] for seed in seeds}, []

    def on_epoch(seed: int, epoch: int, record: dict) -> None:
        full = {**record, "seed": seed, "seed_index": list(job.seeds).index(seed), "objective": record[job.objective]}
        histories[seed].append(full)
        if report is not None:
            report(dict(full), None)

    def on_seed_end(seed: int, outcome) -> None:
        flat = job.config(seed).flat()
        row = {**_identity(job, seed, flat), "device": str(device), **(row_extra or {})}
        objective = _store_outcome(job, row, outcome, started=started, data=data, store=store, schema=schema,
                                   flat=flat, cell=cell_key(flat), seed=seed, attempt=job.attempt(seed),
                                   write_rows=write_rows)
        if objective is not None:
            scores.append(objective)
        if seed_hooks is not None:
            seed_hooks.start_seed(row)
            for record in histories[seed]:
                seed_hooks.log_epoch(record)
            seed_hooks.end_seed(row)

    try:
        train_seeds(config, data, seeds, device=device, on_epoch=on_epoch, on_seed_end=on_seed_end)
    except Exception as exc:  # noqa: BLE001 - a setup failure fails every seed of the group the same way
        if is_infrastructure(exc):
            raise
        for seed in seeds:
            if not store.has_row(_cell(job, seed), seed, job.attempt(seed)) and write_rows:
                store.write_row({**failed_row(job, seed, describe(exc)), "device": str(device), **(row_extra or {})},
                                schema)
    return scores


def diagnostics_artefact(result) -> bytes:
    """The per-run diagnostics JSON (DIAG_CONTRACT.md): best epoch, its scalars and spectra, the
    per-epoch scalars. NaN (a column that does not apply) is written as null: strict JSON."""
    def plain(value):
        return value if not isinstance(value, float) or math.isfinite(value) else None

    return json.dumps({"best_epoch": result.best_epoch,
                       "scalars": {k: plain(v) for k, v in result.diagnostics.items()},
                       "spectra": {k: [plain(v) for v in values] for k, values in result.spectra.items()},
                       "epochs": [{k: plain(v) for k, v in e.items()} for e in result.diagnostics_epochs]},
                      allow_nan=False).encode()


def failed_row(job: Job, seed: int, error: str) -> dict:
    """The row stored for a seed that failed before or outside training (its trial died, bad data)."""
    return {**_identity(job, seed, job.config(seed).flat()), "status": FAILED, "error": error,
            "finished_at": time.time(), **provenance()}


def _cell(job: Job, seed: int) -> str:
    return cell_key(job.config(seed).flat())


def _identity(job: Job, seed: int, flat: dict) -> dict:
    """The columns that say which sweep, variant, cell, seed and attempt a row is (factors included)."""
    return {"sweep": job.sweep, "study": job.study, "variant": job.variant, "cell": cell_key(flat),
            "trial_id": job.trial_id, "data": job.data, **flat, "seed": seed, "attempt": job.attempt(seed)}
