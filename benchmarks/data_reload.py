"""Reload time of a cached dataset: the Parquet cache as loaded before, Parquet now, and the snapshot.

All three load the same data in this process, from files written to a temporary directory (the page
cache is warm after the first repetition; the best of --repeats is reported, as the machine may be
shared). "before" is a frozen copy of the loader and validate() this project had until the snapshot
cache (Parquet decode, one writable copy per column, torch.stack, validate with per-field torch
reductions over dim 0); the ratio before/snapshot is the speed-up of reloading synthetic data.

    python benchmarks/data_reload.py [--data synthetic:kuairand] [--repeats 3] [--smoke-test]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import torch

from model.data import META_KEY, SPLITS, MultiDomainData
from model.datasets import load_data
from model.datasets.synthetic import make_synthetic
from model.datasets.snapshot import load_snapshot, save_snapshot


def load_parquet_before(path: Path) -> MultiDomainData:
    """The loader as it was (frozen here as the reference of the measurement)."""
    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[META_KEY])
    col = lambda name: torch.from_numpy(table.column(name).to_numpy().copy())  # noqa: E731
    features = torch.stack([col(f).long() for f in meta["field_names"]], dim=1)
    data = MultiDomainData(
        name=meta["name"], features=features, labels=col("__label").float(), domains=col("__domain").long(),
        users=col("__user").long(), split=col("__split").to(torch.int8),
        field_names=tuple(meta["field_names"]), vocab_sizes=tuple(int(v) for v in meta["vocab_sizes"]),
        domain_names=tuple(meta["domain_names"]),
        truth=col("__truth").float() if "__truth" in table.column_names else None)
    _validate_before(data)
    return data


def _validate_before(self: MultiDomainData) -> None:
    """The range and split checks of validate() as they were (the shape checks cost nothing)."""
    mins = self.features.min(dim=0).values
    maxs = self.features.max(dim=0).values
    vocab = torch.tensor(self.vocab_sizes, device=self.features.device)
    for f in range(self.num_fields):
        if mins[f] < 0 or maxs[f] >= vocab[f]:
            raise ValueError(f"field {self.field_names[f]!r} out of range")
    if ((self.labels != 0) & (self.labels != 1)).any():
        raise ValueError("labels must be 0 or 1")
    if self.domains.min() < 0 or self.domains.max() >= self.num_domains:
        raise ValueError("domain out of range")
    if not torch.isin(self.split, torch.tensor([0, 1, 2], dtype=self.split.dtype)).all():
        raise ValueError("bad split")
    counts = torch.zeros(3, self.num_domains, dtype=torch.int64)
    counts.index_put_((self.split.long(), self.domains), torch.ones_like(self.domains), accumulate=True)
    for s in range(len(SPLITS)):
        for d in range(self.num_domains):
            if counts[s, d] == 0:
                raise ValueError("empty split")


def best_of(repeats: int, load) -> tuple[float, MultiDomainData]:
    times, data = [], None
    for _ in range(repeats):
        data = None  # release the previous copy first: memory, and fair page-fault costs
        start = time.perf_counter()
        data = load()
        times.append(time.perf_counter() - start)
    return min(times), data


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="synthetic:kuairand", help="any --data spec (default synthetic:kuairand)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, one repetition")
    args = parser.parse_args(argv)
    data = make_synthetic("tiny") if args.smoke_test else load_data(args.data)
    repeats = 1 if args.smoke_test else args.repeats
    with tempfile.TemporaryDirectory(prefix="data_reload_") as tmp:
        parquet, snapshot = Path(tmp) / "data.parquet", Path(tmp) / "snapshot"
        data.save_parquet(parquet)
        save_snapshot(data, snapshot)
        print(f"{data.name}: {data.num_rows:,} rows x {data.num_fields} fields; Parquet "
              f"{parquet.stat().st_size / 1e6:,.0f} MB, snapshot "
              f"{sum(p.stat().st_size for p in snapshot.iterdir()) / 1e6:,.0f} MB")
        del data
        results = {}
        loaders = {"before: Parquet, stack, validate": lambda: load_parquet_before(parquet),
                   "Parquet now (MultiDomainData.load_parquet)": lambda: MultiDomainData.load_parquet(parquet),
                   "snapshot (memory-mapped, validated)": lambda: load_snapshot(snapshot)}
        for name, load in loaders.items():
            results[name], loaded = best_of(repeats, load)
            print(f"  {name:<44} {results[name]:7.2f} s", flush=True)
        validate_s, _ = best_of(repeats, loaded.validate)
        before_validate_s, _ = best_of(repeats, lambda: _validate_before(loaded))
        print(f"  validate() alone: {validate_s:.2f} s now, {before_validate_s:.2f} s before")
        first = next(iter(results.values()))
        print(f"speed-up before -> snapshot: {first / results['snapshot (memory-mapped, validated)']:.1f}x; "
              f"before -> Parquet now: {first / results['Parquet now (MultiDomainData.load_parquet)']:.1f}x")
        del loaded
    return results


if __name__ == "__main__":
    main()
