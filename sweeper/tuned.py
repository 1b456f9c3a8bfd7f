"""Tuned studies: every row gets the same declared tuning budget, then the seeded replicate.

    study: tuned
    tuning: {budget: 4, seeds: [100, 101], metric: val_auc_overall, mode: max}
    variants:
      - {name: Base, set: {aux_loss: none}}                                  # nothing to tune
      - {name: +Dot, set: {aux_loss: dot}, tune: {alpha: [1e-5, 1e-4, 1e-3, 1e-2]}}

1. Tuning: each tuned row runs each of its `budget` configurations on every tuning seed (disjoint
   from the replicate seeds: the replicate's scores never chose anything). Runs are stored apart,
   in SWEEP/tuning/results, keyed like replicate rows, so a rerun skips every finished run.
2. Choice: per row, the configuration with the best mean tuning metric (a validation metric) over
   the tuning seeds that finished; ties go to the first in grid order. Stored in SWEEP/tuned.json
   with every configuration's score, and shown in the report.
3. Replicate: the rows with their chosen values, run for every replicate seed as a replicate study.
A row whose tuning runs all failed is not replicated (it shows up as missing in the report).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from sweeper.space import Space, Variant, cell_key
from sweeper.store import OK, ResultsStore, join

TUNING_DIR = "tuning"
CHOICES_FILE = "tuned.json"


@dataclass(frozen=True)
class Point:
    """One configuration of a row's tune grid and what its tuning runs scored."""

    values: dict
    score: float  # mean tuning metric over the seeds that finished (NaN: none did)
    seeds_ok: int


@dataclass(frozen=True)
class Choice:
    variant: str
    metric: str
    points: tuple[Point, ...]  # grid order
    chosen: dict | None  # the chosen values; None when no tuning run of the row finished

    @property
    def tried(self) -> int:
        return sum(p.seeds_ok > 0 for p in self.points)


def tuning_uri(sweep_uri: str) -> str:
    return join(sweep_uri, TUNING_DIR)


def label(values: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _cell(base: dict, variant: Variant, values: dict) -> str:
    from model.config import RunConfig

    return cell_key(RunConfig().with_overrides({**base, **variant.factors, **values}).flat())


def tuning_jobs(space: Space, base: dict, data: str, sweep_uri: str, *, force: bool = False,
                rerun_failed: bool = False) -> tuple[list, int]:
    """One job per (tuned row, configuration, tuning seed) not yet stored (per group of up to
    resources.seed_batch of its unstored seeds); and how many were stored."""
    from sweeper.trial import Job

    done, failed = (set(), set()) if force else ResultsStore(tuning_uri(sweep_uri)).stored()
    if rerun_failed:
        failed = set()
    jobs, skipped = [], 0
    for variant in space.variants:
        if not variant.tune:
            continue
        for values in variant.points():
            cell = _cell(base, variant, values)
            pending = [seed for seed in space.tuning.seeds if (cell, seed) not in done and (cell, seed) not in failed]
            skipped += len(space.tuning.seeds) - len(pending)
            size = space.resources.seed_batch
            for start in range(0, len(pending), size):
                jobs.append(Job(sweep=space.name, study="tuning", variant=f"{variant.name} [{label(values)}]",
                                factors={**variant.factors, **values}, base=base,
                                seeds=tuple(pending[start:start + size]), data=data,
                                sweep_uri=tuning_uri(sweep_uri), objective=space.tuning.metric, seed_batch=size))
    return jobs, skipped


def choose(space: Space, base: dict, runs: pd.DataFrame) -> dict[str, Choice]:
    """Each tuned row's choice from its stored tuning runs (pure: the same runs, the same choice)."""
    tuning = space.tuning
    ok = runs[(runs["status"] == OK) & runs["seed"].isin(list(tuning.seeds))] if len(runs) else runs
    sign = 1.0 if tuning.mode == "max" else -1.0
    choices = {}
    for variant in space.variants:
        if not variant.tune:
            continue
        points = []
        for values in variant.points():
            scores = ok.loc[ok["cell"] == _cell(base, variant, values), tuning.metric] if len(ok) \
                else pd.Series(dtype=float)
            scores = scores.dropna()
            points.append(Point(values=values, score=float(scores.mean()) if len(scores) else math.nan,
                                seeds_ok=len(scores)))
        finished = [p for p in points if p.seeds_ok > 0]
        best = max(finished, key=lambda p: sign * p.score, default=None)  # max keeps the first of ties
        choices[variant.name] = Choice(variant.name, tuning.metric, tuple(points),
                                       dict(best.values) if best else None)
    return choices


def resolved(space: Space, choices: dict[str, Choice]) -> tuple[tuple[Variant, ...], list[str]]:
    """The rows to replicate, tuned ones with their chosen values; and the rows left out."""
    keep, left_out = [], []
    for variant in space.variants:
        if not variant.tune:
            keep.append(variant)
        elif choices[variant.name].chosen is None:
            left_out.append(variant.name)
        else:
            keep.append(replace(variant, factors={**variant.factors, **choices[variant.name].chosen}, tune={}))
    return tuple(keep), left_out


def write_choices(sweep_uri: str, space: Space, choices: dict[str, Choice]) -> None:
    record = {"budget": space.tuning.budget, "seeds": list(space.tuning.seeds), "metric": space.tuning.metric,
              "mode": space.tuning.mode, "rows": [asdict(c) for c in choices.values()]}
    ResultsStore(sweep_uri).write_text(CHOICES_FILE, json.dumps(record, indent=2, default=str))


def choices_frame(sweep_dir: Path | str) -> pd.DataFrame | None:
    """SWEEP/tuned.json as one row per (row, configuration), the chosen ones marked; None if absent."""
    path = Path(sweep_dir) / CHOICES_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    rows = []
    for choice in record["rows"]:
        for point in choice["points"]:
            rows.append({"variant": choice["variant"], "configuration": label(point["values"]),
                         f"mean {record['metric']}": point["score"],
                         "tuning seeds ok": f"{point['seeds_ok']}/{len(record['seeds'])}",
                         "chosen": "yes" if point["values"] == choice["chosen"] else ""})
    return pd.DataFrame(rows)


def run_tuning(space: Space, base: dict, data: str, sweep_uri: str, *, force: bool, rerun_failed: bool,
               address: str | None, wandb_mode: str) -> Space:
    """Steps 1 and 2: run the missing tuning runs, choose, store the choices; the space to replicate."""
    jobs, skipped = tuning_jobs(space, base, data, sweep_uri, force=force, rerun_failed=rerun_failed)
    tuned_rows = sum(bool(v.tune) for v in space.variants)
    print(f"tuning: {tuned_rows} rows x {space.tuning.budget} configurations x {len(space.tuning.seeds)} tuning "
          f"seeds; {len(jobs)} runs to do, {skipped} already stored")
    if jobs:
        from sweeper import tune_runner  # Ray is imported only when there is work for it

        tune_runner.connect(address, with_dashboard=space.resources.workers > 0)
        errors = tune_runner.run_tune(jobs=jobs, search=None, template_job=None, resources=space.resources,
                                      sweep_uri=tuning_uri(sweep_uri), sweep_name=f"{space.name}-tuning",
                                      wandb_mode=wandb_mode, optuna_journal=None)
        tune_runner.store_trial_errors(errors, tuning_uri(sweep_uri))
    choices = choose(space, base, ResultsStore(tuning_uri(sweep_uri)).read())
    write_choices(sweep_uri, space, choices)
    for choice in choices.values():
        chosen = label(choice.chosen) if choice.chosen is not None else "none (no tuning run finished)"
        print(f"tuned {choice.variant}: {chosen} ({choice.tried}/{space.tuning.budget} configurations scored)")
    variants, left_out = resolved(space, choices)
    if left_out:
        print(f"not replicated, their tuning failed: {left_out}; retry with --rerun-failed")
    return replace(space, variants=variants)
