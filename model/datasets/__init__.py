"""Datasets by name: the `--data` specs and their loaders.

Specs (what `--data` takes):
  synthetic:SIZE[:SEED]     generated KuaiRand-shaped data, world v2 (model/datasets/synthetic.py)
  synthetic-v1:SIZE[:SEED]  the first synthetic world, frozen so that older sweeps reproduce
                            (model/datasets/synthetic_v1.py)
  parquet:FILE              a file written by MultiDomainData.save_parquet
  kuairand1k:DIR            the output directory of `prepare kuairand1k` (DIR/data.parquet)
  aliccp:DIR                the output directory of `prepare aliccp`

Preparing the paper's datasets is the CLI's job (model/datasets/cli.py):
  python -m model.datasets prepare kuairand1k --raw DIR --out DIR ...
  python -m model.datasets prepare aliccp --raw DIR --out DIR ...

Package layout (imports point one way only: the loaders and the preparers use the shared helpers,
nothing here imports the CLI or a preparer):
  __init__   specs, loaders, load_data, check_spec
  prepare    helpers shared by the preparers (atomic output, streaming writer, id counts, CSV)
  kuairand   KuaiRand-1K preparer        aliccp   Ali-CCP preparer
  synthetic  synthetic world v2          synthetic_v1   the frozen first world
  snapshot   memory-mapped cache format of generated data
  cli        `python -m model.datasets prepare ...`
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from model.data import META_KEY, MultiDomainData
from model.datasets import synthetic, synthetic_v1
from model.datasets.prepare import DATA_FILE, SUMMARY_FILE, log
from model.datasets.snapshot import load_snapshot, save_snapshot

PREPARED_KINDS = ("kuairand1k", "aliccp")
# Generated worlds by spec kind: (generator, world tag of its cache files, the source files its output
# depends on).
GENERATORS = {
    "synthetic": (synthetic.make_synthetic, "synthetic-v2", (synthetic.__file__,)),
    "synthetic-v1": (synthetic_v1.make_synthetic_v1, "synthetic-v1", (synthetic_v1.__file__, synthetic.__file__)),
}


def _cache_key(kind: str, size: str, seed: int) -> str:
    """The cache name of a generated dataset: world, size, seed and a hash of its generator's source,
    so a changed generator never serves stale data and v1 and v2 never share a file."""
    _, world, sources = GENERATORS[kind]
    digest = hashlib.sha1()
    for source in sources:
        digest.update(Path(source).read_bytes())
    return f"{world}-{size}-{seed}-{digest.hexdigest()[:10]}"


def _generated(kind: str, arg: str) -> MultiDomainData:
    """Generated data; sizes above tiny are cached as a memory-mapped snapshot (model/datasets/snapshot.py):
    generating the 11.6 M rows of kuairand takes ~30 s, reloading them ~1 s."""
    size, _, seed = arg.partition(":")
    size, seed = size or "tiny", int(seed or 0)
    make = GENERATORS[kind][0]
    cache_dir = os.environ.get("CROCODILE_CACHE_DIR", str(Path.home() / ".cache" / "crocodile-sweeps"))
    if size == "tiny" or cache_dir in ("", "off"):
        return make(size, seed)
    path = Path(cache_dir) / _cache_key(kind, size, seed)
    if path.exists():
        try:
            return load_snapshot(path)
        except (OSError, ValueError, KeyError) as exc:  # a damaged cache is rebuilt, not fatal
            log(f"rebuilding synthetic cache {path}: {type(exc).__name__}: {exc}")
            shutil.rmtree(path, ignore_errors=True)
    data = make(size, seed)
    try:
        save_snapshot(data, path)
    except OSError as exc:  # a read-only home still gets its data
        log(f"could not cache synthetic data at {path}: {exc}")
    return data


def load_prepared(kind: str, arg: str) -> MultiDomainData:
    """Load the output directory of `prepare KIND` (or its data.parquet file directly)."""
    path = Path(arg)
    data_path = path if path.suffix == ".parquet" else path / DATA_FILE
    if not data_path.exists():
        raise FileNotFoundError(
            f"{kind} data {str(data_path)!r} does not exist; prepare it first with "
            f"`python -m model.datasets prepare {kind} --raw RAW_DIR --out {path}`")
    summary_path = data_path.parent / SUMMARY_FILE
    if summary_path.exists():
        made_by = json.loads(summary_path.read_text()).get("dataset")
        if made_by not in (None, kind):
            raise ValueError(f"{str(data_path.parent)!r} holds prepared {made_by!r} data, not {kind!r}; "
                             f"use --data {made_by}:{arg}")
    return MultiDomainData.load_parquet(data_path)


LOADERS = {
    "synthetic": lambda arg: _generated("synthetic", arg),
    "synthetic-v1": lambda arg: _generated("synthetic-v1", arg),
    "parquet": MultiDomainData.load_parquet,
    "kuairand1k": lambda arg: load_prepared("kuairand1k", arg),
    "aliccp": lambda arg: load_prepared("aliccp", arg),
}


def check_spec(spec: str) -> None:
    """Fail fast (before any expensive work) on a malformed data spec.

    Only the form is checked: a path may exist only where the run executes (e.g. a cluster's disk).
    """
    kind, sep, arg = spec.partition(":")
    if kind not in LOADERS:
        raise ValueError(f"unknown data source {kind!r} in {spec!r}; valid: {sorted(LOADERS)} "
                         f"(e.g. synthetic:tiny, synthetic-v1:small, parquet:/path/data.parquet, "
                         f"kuairand1k:/path/prepared_dir, aliccp:/path/prepared_dir)")
    if kind in GENERATORS:
        size, _, seed = arg.partition(":")
        if size and size not in synthetic.SIZES:
            raise ValueError(f"unknown synthetic size {size!r} in {spec!r}; valid: {sorted(synthetic.SIZES)}")
        if seed and not seed.isdigit():
            raise ValueError(f"synthetic data seed must be a non-negative integer, got {seed!r} in {spec!r}")
    elif not arg:
        what = "a prepared directory" if kind in PREPARED_KINDS else "a path"
        raise ValueError(f"data spec {spec!r} needs {what} after {kind}:")


def load_data(spec: str) -> MultiDomainData:
    check_spec(spec)
    kind, _, arg = spec.partition(":")
    return LOADERS[kind](arg)


@dataclass(frozen=True)
class DataInfo:
    """What a sweep must know about its data before any trial runs (no rows are read)."""

    spec: str
    name: str
    domain_names: tuple[str, ...]
    field_names: tuple[str, ...]
    has_truth: bool  # the planted click probability is known (synthetic data): bayes* metrics exist
    num_rows: int


def describe_data(spec: str) -> DataInfo:
    """Resolve spec and read only its metadata: the Parquet footer, or the generator's constants.

    Raises what loading would raise (FileNotFoundError naming the file, ValueError for a file that
    is not in our format) in milliseconds, before any expensive work."""
    check_spec(spec)
    kind, _, arg = spec.partition(":")
    if kind in GENERATORS:
        size = arg.partition(":")[0] or "tiny"
        fields = ("user_id", "item_id", "domain_id", *synthetic.USER_FIELDS, *synthetic.ITEM_FIELDS)
        world = GENERATORS[kind][1]
        return DataInfo(spec, f"{world}-{size}", synthetic.DOMAIN_NAMES, fields, True,
                        synthetic.SIZES[size].num_rows)
    path = Path(arg)
    if kind in PREPARED_KINDS:
        path = path if path.suffix == ".parquet" else path / DATA_FILE
        if not path.exists():
            load_prepared(kind, arg)  # raises its FileNotFoundError with the `prepare` hint
    if not path.exists():
        raise FileNotFoundError(f"dataset file {str(path)!r} does not exist")
    try:
        footer = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise ValueError(f"dataset file {str(path)!r} is not a readable Parquet file: {exc}") from None
    raw = (footer.schema_arrow.metadata or {}).get(META_KEY)
    if raw is None:
        raise ValueError(f"{str(path)!r} is not a crocodile dataset: its Parquet schema has no "
                         f"{META_KEY.decode()!r} metadata")
    meta = json.loads(raw)
    return DataInfo(spec, meta["name"], tuple(meta["domain_names"]), tuple(meta["field_names"]),
                    "__truth" in footer.schema_arrow.names, footer.metadata.num_rows)
