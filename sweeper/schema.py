"""The results row: one Arrow schema for every row a sweep stores, ok or failed.

Every file under results/ carries the same columns in the same order (metrics are null, read as
NaN, on failed rows), so `pandas.read_parquet(results_dir)` sees them all whichever file comes
first. The metric columns depend on the dataset's domains and on whether it knows the planted click
probability (synthetic data: bayes* columns), the diagnostic ones (ia_*, di_*: model/probe.py) on
its domains, so a sweep fixes them once, before any trial runs.
"""
from __future__ import annotations

import dataclasses
import typing
from functools import lru_cache

import pyarrow as pa
import torch

from model.config import ModelConfig, TrainConfig
from model.metrics import evaluate
from model.probe import diagnostic_columns

IDENTITY = (("sweep", pa.string()), ("study", pa.string()), ("variant", pa.string()), ("cell", pa.string()),
            ("seed", pa.int64()), ("attempt", pa.int64()), ("status", pa.string()), ("error", pa.string()),
            ("trial_id", pa.string()), ("data", pa.string()))
RUN = (("best_epoch", pa.int64()), ("epochs_run", pa.int64()), ("resumed_from_epoch", pa.int64()),
       ("wall_time_s", pa.float64()), ("samples_per_s", pa.float64()), ("finished_at", pa.float64()))
WHERE = (("device", pa.string()), ("node_id", pa.string()), ("path", pa.string()), ("num_workers", pa.int64()))
PROVENANCE = (("git_commit", pa.string()), ("host", pa.string()), ("torch_version", pa.string()),
              ("ray_version", pa.string()), ("optuna_version", pa.string()))
# The best epoch's weights beside the row (sweep-relative path; empty when the space keeps none).
ARTEFACT = (("model_path", pa.string()), ("model_bytes", pa.int64()))
# Mechanism diagnostics (model/probe.py): seconds spent, and the per-run JSON artefact beside the row.
DIAGNOSTICS_RUN = (("diagnostics_s", pa.float64()), ("diagnostics_path", pa.string()))
ARROW_TYPES = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def config_fields() -> tuple[tuple[str, pa.DataType], ...]:
    """Every flat config key with its Arrow type (tuples such as expert_hidden are stored '128,64')."""
    out = []
    for cls in (ModelConfig, TrainConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name == "seed":  # an identity column
                continue
            kind = hints[f.name]
            out.append((f.name, pa.string() if typing.get_origin(kind) is tuple else ARROW_TYPES[kind]))
    return tuple(out)


@lru_cache(maxsize=8)
def metric_names(domains: tuple[str, ...], bayes: bool) -> tuple[str, ...]:
    """val_* and test_* columns, taken from model.metrics.evaluate itself so they never drift apart."""
    n = 4 * max(len(domains), 1)  # no domains known (data that never loaded): the overall columns
    scores = torch.linspace(-1, 1, n)
    labels = torch.tensor([0.0, 1.0] * (n // 2))
    dom = torch.arange(max(len(domains), 1)).repeat_interleave(4)
    users = torch.arange(n) % 2
    names = []
    for split in ("val", "test"):
        names += list(evaluate(split, scores, labels, dom, users, domains, torch.sigmoid(scores) if bayes else None))
    return tuple(names)


@lru_cache(maxsize=8)
def row_schema(domains: tuple[str, ...], bayes: bool) -> pa.Schema:
    metrics = tuple((name, pa.float64()) for name in metric_names(tuple(domains), bayes))
    diagnostics = tuple((name, pa.float64()) for name in diagnostic_columns(tuple(domains)))
    return pa.schema([pa.field(n, t) for n, t in (*IDENTITY, *config_fields(), *metrics, *RUN, *WHERE,
                                                   *PROVENANCE, *ARTEFACT, *diagnostics, *DIAGNOSTICS_RUN)])


def to_table(row: dict, schema: pa.Schema) -> pa.Table:
    """One row as a table of exactly `schema` (absent columns null); an unknown column is a bug."""
    unknown = sorted(set(row) - set(schema.names))
    if unknown:
        raise ValueError(f"results row has columns {unknown} that the results schema lacks "
                         f"(sweeper/schema.py); a row must match every other row of the sweep")
    plain = {k: ",".join(map(str, v)) if isinstance(v, (tuple, list)) else v for k, v in row.items()}
    return pa.Table.from_pylist([plain], schema=schema)
