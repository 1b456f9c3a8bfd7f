"""One sweep trial without Ray: train a configuration for its seeds and store one row per seed.

Ray Tune (in-process path) and Ray Train workers both call `run_job`; so can a plain script.
A seed whose training raises (NaN loss, out of memory, bad data) is stored as failed with its
cause and the next seed goes on.
"""
from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from model.config import RunConfig
from model.data import MultiDomainData
from model.datasets import load_data
from model.train import train
from sweeper.space import cell_key
from sweeper.store import FAILED, OK, ResultsStore, provenance

Report = Callable[[dict], None]


class SeedHooks(Protocol):
    """Told when each seed starts (its identity columns) and ends (its stored row), e.g. W&B."""

    def start_seed(self, identity: dict) -> None: ...

    def end_seed(self, row: dict) -> None: ...

_DATA_CACHE: dict[str, MultiDomainData] = {}


@dataclass(frozen=True)
class Job:
    """The work of one trial. factors: flat config overrides on top of base; seeds run in order."""

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

    def config(self, seed: int) -> RunConfig:
        return RunConfig().with_overrides({**self.base, **self.factors, "seed": seed})


def cached_data(spec: str) -> MultiDomainData:
    """Datasets are loaded once per process: Tune reuses trial actors, so later trials pay nothing."""
    if spec not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[spec] = load_data(spec)
    return _DATA_CACHE[spec]


def run_job(job: Job, *, device: str | torch.device = "cpu", report: Report | None = None,
            write_rows: bool = True, row_extra: dict | None = None, seed_hooks: SeedHooks | None = None) -> dict:
    """Train every seed of the job, storing each as soon as it ends; return the trial summary.

    report(record) receives every epoch's record plus `seed`, `epoch` and `objective` (the
    monitored validation metric); the summary's `objective` is the mean over the seeds that ran ok.
    write_rows is False on every DDP rank but 0; row_extra adds columns (e.g. the Ray node id).
    seed_hooks hear of each seed's start and of its row once stored.
    """
    store = ResultsStore(job.sweep_uri)
    data = cached_data(job.data)
    scores: list[float] = []
    for seed_index, seed in enumerate(job.seeds):
        config = job.config(seed)
        row = {**_identity(job, seed, config.flat()), "device": str(device), **(row_extra or {})}
        started = time.time()
        if seed_hooks is not None:
            seed_hooks.start_seed(row)

        def on_epoch(epoch: int, record: dict, seed=seed, seed_index=seed_index):
            if report is not None:
                report({**record, "seed": seed, "seed_index": seed_index, "objective": record[job.objective]})

        try:
            result = train(config, data, device=device, on_epoch=on_epoch)
        except Exception as exc:  # noqa: BLE001 - any training failure is data, not a crash
            row |= {"status": FAILED, "error": f"{type(exc).__name__}: {exc}\n{_short_traceback(exc)}",
                    "wall_time_s": time.time() - started}
        else:
            row |= {"status": OK, "error": "", **result.metrics, "best_epoch": result.best_epoch,
                    "epochs_run": result.epochs_run, "wall_time_s": result.wall_time_s,
                    "samples_per_s": result.samples_per_s}
            scores.append(result.metrics[job.objective])
        row |= {"finished_at": time.time(), **provenance()}
        if write_rows:
            store.write_row(row)
        if seed_hooks is not None:
            seed_hooks.end_seed(row)
    objective = sum(scores) / len(scores) if scores else math.nan
    return {"objective": objective, "seeds_ok": len(scores), "seeds_failed": len(job.seeds) - len(scores),
            "done": True}


def failed_row(job: Job, seed: int, error: str) -> dict:
    """The row the driver stores for a seed whose trial died before it could write one itself."""
    return {**_identity(job, seed, job.config(seed).flat()), "status": FAILED, "error": error,
            "finished_at": time.time(), **provenance()}


def _identity(job: Job, seed: int, flat: dict) -> dict:
    """The columns that say which sweep, variant, cell and seed a row belongs to (factors included)."""
    return {"sweep": job.sweep, "study": job.study, "variant": job.variant, "cell": cell_key(flat),
            "trial_id": job.trial_id, "data": job.data, **flat, "seed": seed}


def _short_traceback(exc: BaseException, limit: int = 4) -> str:
    return "".join(traceback.format_tb(exc.__traceback__, limit=-limit))
