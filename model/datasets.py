"""Datasets by name: `synthetic:SIZE[:SEED]` or `parquet:FILE` (a file written by save_parquet)."""
from __future__ import annotations

from model.data import MultiDomainData
from model.synthetic import SIZES, make_synthetic


def _synthetic(arg: str) -> MultiDomainData:
    size, _, seed = arg.partition(":")
    if seed and not seed.isdigit():
        raise ValueError(f"synthetic data seed must be a non-negative integer, got {seed!r}")
    return make_synthetic(size or "tiny", int(seed or 0))


LOADERS = {
    "synthetic": _synthetic,
    "parquet": MultiDomainData.load_parquet,
}


def check_spec(spec: str) -> None:
    """Fail fast (before any expensive work) on a malformed data spec."""
    kind, sep, arg = spec.partition(":")
    if kind not in LOADERS:
        raise ValueError(f"unknown data source {kind!r} in {spec!r}; valid: {sorted(LOADERS)} "
                         f"(e.g. synthetic:tiny, parquet:/path/data.parquet)")
    if kind == "synthetic" and arg.partition(":")[0] not in SIZES and arg:
        raise ValueError(f"unknown synthetic size in {spec!r}; valid: {sorted(SIZES)}")
    if kind != "synthetic" and not arg:
        raise ValueError(f"data spec {spec!r} needs a path after {kind}:")


def load_data(spec: str) -> MultiDomainData:
    check_spec(spec)
    kind, _, arg = spec.partition(":")
    return LOADERS[kind](arg)
