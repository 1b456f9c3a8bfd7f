"""Helpers shared by the preparers of the paper's datasets (model/datasets/kuairand.py, aliccp.py).

Fingerprint of the inputs, atomic output directory (data.parquet + summary.json), streaming Parquet
writer of MultiDomainData's layout, streaming id counter, frequency filtering and remapping, the
stratified split, per-split statistics, and CSV reading in pieces with located errors.

An output directory holds data.parquet (the model's format: field names, vocabulary sizes and domain
names in its metadata, the split as a column) and summary.json (rows per domain and split, click rates,
vocabulary per field, which input columns were used, and a fingerprint of the inputs and options).
Re-running with the same inputs and options is a no-op unless --force. Both files are written under
temporary names and renamed; summary.json is removed before data.parquet is replaced and written
last, so an interrupted run leaves either the previous good pair or a directory that the next run
rebuilds.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from model.data import META_KEY, SPLITS

DATA_FILE = "data.parquet"
SUMMARY_FILE = "summary.json"
# Bumped whenever a preparer's output for the same input changes: a stale output is then rebuilt.
PREPARE_VERSION = 1
# Raw ids that are absent (a row lacks the field) are carried as this value until remapping.
MISSING = np.iinfo(np.int64).min


def log(message: str) -> None:
    """Progress and notes of the preparers go to stderr; the summary goes to stdout."""
    print(message, file=sys.stderr, flush=True)


def fingerprint(dataset: str, mode: str, files: Iterable[Path], options: dict) -> dict:
    """What the output depends on: input file names, sizes and mtimes, the options, the code version."""
    entries = []
    for f in sorted(Path(p) for p in files):
        st = f.stat()
        entries.append({"name": f.name, "path": str(f.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return {"dataset": dataset, "mode": mode, "version": PREPARE_VERSION, "files": entries, "options": options}


class PreparedOutput:
    """An output directory written atomically: temp files, then renames (summary.json last)."""

    def __init__(self, out_dir: str | os.PathLike):
        self.dir = Path(out_dir)
        self.data_path = self.dir / DATA_FILE
        self.summary_path = self.dir / SUMMARY_FILE
        self.tmp_data = self.dir / f".{DATA_FILE}.{os.getpid()}.tmp"
        self.tmp_summary = self.dir / f".{SUMMARY_FILE}.{os.getpid()}.tmp"

    def up_to_date(self, fp: dict) -> dict | None:
        """The stored summary when the output was made from exactly these inputs and options."""
        if not (self.summary_path.exists() and self.data_path.exists()):
            return None
        try:
            summary = json.loads(self.summary_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if summary.get("fingerprint") != fp:
            return None
        if summary.get("output", {}).get("size") != self.data_path.stat().st_size:
            return None
        return summary

    def begin(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.discard()
        return self.tmp_data

    def commit(self, summary: dict) -> None:
        summary["output"] = {"file": DATA_FILE, "size": self.tmp_data.stat().st_size}
        self.tmp_summary.write_text(json.dumps(summary, indent=1, sort_keys=False) + "\n")
        # Invalidate the old pair first: a crash between the renames leaves no summary, so the
        # next run rebuilds instead of trusting a summary that describes another data file.
        self.summary_path.unlink(missing_ok=True)
        os.replace(self.tmp_data, self.data_path)
        os.replace(self.tmp_summary, self.summary_path)

    def discard(self) -> None:
        for p in (self.tmp_data, self.tmp_summary):
            p.unlink(missing_ok=True)


def run_prepare(out_dir: str | os.PathLike, fp: dict, force: bool,
                build: Callable[[Path], dict]) -> dict:
    """Skip when up to date (unless force); else build(tmp_data_path) -> summary, then commit."""
    out = PreparedOutput(out_dir)
    if not force:
        done = out.up_to_date(fp)
        if done is not None:
            log(f"{out.dir}: up to date with its inputs and options; nothing to do (use --force to rebuild)")
            done["skipped"] = True
            return done
    started = time.perf_counter()
    tmp = out.begin()
    try:
        summary = build(tmp)
        summary["fingerprint"] = fp
        summary["seconds"] = round(time.perf_counter() - started, 3)
        out.commit(summary)
    finally:
        out.discard()
    summary["skipped"] = False
    return summary


class ParquetSink:
    """Writes MultiDomainData's Parquet layout (as save_parquet does) in row groups, from numpy chunks.

    Memory stays that of one chunk, so datasets larger than memory can be written. load_parquet reads
    the result; the schema and metadata are identical to save_parquet's (checked by the tests).
    """

    def __init__(self, path: str | os.PathLike, *, name: str, field_names: tuple[str, ...],
                 vocab_sizes: tuple[int, ...], domain_names: tuple[str, ...]):
        self.field_names = tuple(field_names)
        meta = {"name": name, "field_names": list(field_names), "vocab_sizes": [int(v) for v in vocab_sizes],
                "domain_names": list(domain_names), "splits": list(SPLITS)}
        cols = [pa.field(f, pa.int64()) for f in field_names]
        cols += [pa.field("__label", pa.float32()), pa.field("__domain", pa.int16()),
                 pa.field("__user", pa.int64()), pa.field("__split", pa.int8())]
        self.schema = pa.schema(cols, metadata={META_KEY: json.dumps(meta).encode()})
        self.writer = pq.ParquetWriter(path, self.schema)
        self.rows = 0

    def write(self, features: np.ndarray, labels: np.ndarray, domains: np.ndarray, users: np.ndarray,
              split: np.ndarray) -> None:
        if len(labels) == 0:
            return
        arrays = [pa.array(np.ascontiguousarray(features[:, f]), pa.int64()) for f in range(len(self.field_names))]
        arrays += [pa.array(labels.astype(np.float32)), pa.array(domains.astype(np.int16)),
                   pa.array(users.astype(np.int64)), pa.array(split.astype(np.int8))]
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        self.rows += len(labels)

    def close(self) -> None:
        self.writer.close()


class IdCounter:
    """Occurrence counts of raw int64 ids per field, in memory proportional to the vocabulary.

    Each add() reduces its chunk to (unique id, count) pairs; pending pairs are merged into the
    running sorted table once they exceed `merge_every` entries (so the table never holds one entry
    per row). MISSING ids are not counted.
    """

    def __init__(self, num_fields: int, merge_every: int = 1_000_000):
        self.keys = [np.empty(0, np.int64) for _ in range(num_fields)]
        self.counts = [np.empty(0, np.int64) for _ in range(num_fields)]
        self.pending: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(num_fields)]
        self.pending_size = [0] * num_fields
        self.merge_every = merge_every

    def add(self, f: int, ids: np.ndarray) -> None:
        ids = ids[ids != MISSING]
        if len(ids) == 0:
            return
        u, c = np.unique(ids, return_counts=True)
        self.pending[f].append((u, c.astype(np.int64)))
        self.pending_size[f] += len(u)
        if self.pending_size[f] > max(self.merge_every, len(self.keys[f])):
            self._merge(f)

    def _merge(self, f: int) -> None:
        if not self.pending[f]:
            return
        keys = np.concatenate([self.keys[f]] + [u for u, _ in self.pending[f]])
        counts = np.concatenate([self.counts[f]] + [c for _, c in self.pending[f]])
        u, inv = np.unique(keys, return_inverse=True)
        self.keys[f] = u
        self.counts[f] = np.bincount(inv, weights=counts, minlength=len(u)).astype(np.int64)
        self.pending[f], self.pending_size[f] = [], 0

    def table(self, f: int) -> tuple[np.ndarray, np.ndarray]:
        """(sorted unique ids, their counts) of field f."""
        self._merge(f)
        return self.keys[f], self.counts[f]


def kept_ids(keys: np.ndarray, counts: np.ndarray, min_count: int) -> np.ndarray:
    """The sorted raw ids seen at least min_count times; they become ids 1..K (0 = default/rare)."""
    return keys[counts >= min_count]


def remap(raw: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Raw ids -> 1 + position in the sorted `kept` array, or 0 (rare, unseen or MISSING)."""
    if len(kept) == 0:
        return np.zeros(len(raw), np.int64)
    pos = np.searchsorted(kept, raw)
    pos_c = np.minimum(pos, len(kept) - 1)
    return np.where(kept[pos_c] == raw, pos_c + 1, 0).astype(np.int64)


def stratified_split(domains: np.ndarray, num_domains: int, seed: int,
                     fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> np.ndarray:
    """Split column (N,) int8: within each domain a seeded random 80/10/10 (by default).

    Every domain with >= 3 rows gets at least one row in each split (small domains of small samples
    would otherwise miss validation or test rows, which MultiDomainData.validate rejects). At full
    scale this is a plain random split, done per domain.
    """
    rng = np.random.default_rng(seed)
    split = np.zeros(len(domains), np.int8)
    for d in range(num_domains):
        idx = np.flatnonzero(domains == d)
        n = len(idx)
        if n < 3:
            raise ValueError(f"domain index {d} has {n} rows; at least 3 are needed to split it")
        idx = rng.permutation(idx)
        n_val = max(1, int(round(fractions[1] * n)))
        n_test = max(1, int(round(fractions[2] * n)))
        n_train = n - n_val - n_test
        split[idx[n_train:n_train + n_val]] = 1
        split[idx[n_train + n_val:]] = 2
    return split


class SplitStats:
    """Rows and clicks per (split, domain), accumulated while writing."""

    def __init__(self, num_domains: int):
        self.rows = np.zeros((3, num_domains), np.int64)
        self.clicks = np.zeros((3, num_domains), np.int64)

    def add(self, labels: np.ndarray, domains: np.ndarray, split: np.ndarray) -> None:
        S = self.rows.shape[1]
        key = split.astype(np.int64) * S + domains.astype(np.int64)
        self.rows += np.bincount(key, minlength=3 * S).reshape(3, S)
        self.clicks += np.bincount(key, weights=labels, minlength=3 * S).astype(np.int64).reshape(3, S)

    def check(self, domain_names: tuple[str, ...]) -> None:
        """The condition MultiDomainData.validate enforces, checked before the file is committed."""
        for s, split_name in enumerate(SPLITS):
            for d, dom in enumerate(domain_names):
                if self.rows[s, d] == 0:
                    raise ValueError(f"domain {dom!r} has no rows in split {split_name!r}")

    def to_summary(self, domain_names: tuple[str, ...]) -> dict:
        rate = lambda c, r: round(float(c) / float(r), 6) if r else float("nan")  # noqa: E731
        domains, per = {}, {}
        for d, dom in enumerate(domain_names):
            entry = {"rows": int(self.rows[:, d].sum()),
                     "click_rate": rate(self.clicks[:, d].sum(), self.rows[:, d].sum())}
            for s, split_name in enumerate(SPLITS):
                entry[f"{split_name}_rows"] = int(self.rows[s, d])
                entry[f"{split_name}_click_rate"] = rate(self.clicks[s, d], self.rows[s, d])
                per[f"{split_name}/{dom}"] = {"rows": int(self.rows[s, d]),
                                              "click_rate": rate(self.clicks[s, d], self.rows[s, d])}
            domains[dom] = entry
        return {
            "rows": int(self.rows.sum()),
            "rows_per_split": {name: int(self.rows[s].sum()) for s, name in enumerate(SPLITS)},
            "click_rate": rate(self.clicks.sum(), self.rows.sum()),
            "domains": domains,
            "per_split_domain": per,
        }


# ---- CSV reading with located errors -----------------------------------------------------------

_ROW_RE = re.compile(r"Row #(\d+)")
_COL_RE = re.compile(r"column #(\d+)")


def csv_error(path: Path, exc: Exception, columns: list[str], first_line: int) -> ValueError:
    """Turn a pyarrow CSV error into a ValueError naming file, line and column.

    pyarrow's "Row #k" counts lines from 1 within the parsed piece, which starts at file line first_line.
    """
    msg = str(exc)
    row = _ROW_RE.search(msg)
    col = _COL_RE.search(msg)
    where = f"{path}, line {first_line + int(row.group(1)) - 1}" if row else f"{path}, lines from {first_line}"
    if col and int(col.group(1)) < len(columns):
        where += f", column {columns[int(col.group(1))]!r}"
    conv = re.search(r"conversion error to (\w+): (.*)", msg)
    if conv:
        return ValueError(f"{where}: non-numeric value where a number (id or label) is expected: {conv.group(2)}")
    return ValueError(f"{where}: malformed CSV row: {msg}")


def read_header(path: Path) -> list[str]:
    if not path.exists():
        raise FileNotFoundError(f"input file {str(path)!r} does not exist")
    with open(path, "rb") as fh:
        first = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    if not first:
        raise ValueError(f"{path}, line 1: file is empty (expected a header line)")
    return [c.strip().strip('"') for c in first.split(",")]


def require_columns(path: Path, header: list[str], required: Iterable[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{path}, line 1: missing column {missing[0]!r} (all missing: {missing}); "
                         f"the header has {header}")


def _pieces(fh, block_size: int) -> Iterator[bytes]:
    """Consecutive pieces of about block_size bytes, each ending at a line end (the last may not)."""
    carry = b""
    while True:
        data = fh.read(block_size)
        if not data:
            if carry:
                yield carry
            return
        buf = carry + data if carry else data
        cut = buf.rfind(b"\n")
        if cut < 0:  # a line longer than block_size: keep reading
            carry = buf
            continue
        carry = buf[cut + 1:]
        yield buf[:cut + 1]


def iter_csv(path: Path, *, column_names: list[str] | None = None, skip_rows: int = 0,
             include: list[str] | None = None, types: dict | None = None,
             block_size: int = 32 << 20, quoting: bool = True) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Yield (file line of the batch's first row, batch), reading the file in pieces of block_size.

    The file is cut at line ends in Python and each piece parsed on its own, so memory is a couple of
    pieces and their decoded columns whatever the file size. (pyarrow.csv.open_csv reads up to ~32
    blocks ahead in background threads: measured 1.1 GB buffered with 32 MB blocks, given a path or
    a file object alike.) Rows must not contain
    quoted line breaks, which the KuaiRand and Ali-CCP files never do. Every error comes out as a
    ValueError naming file, line and column.
    """
    header = list(column_names) if column_names is not None else read_header(path)
    skip = skip_rows + (0 if column_names is not None else 1)
    bad: dict = {}

    def on_invalid(row):
        bad.setdefault("row", row)
        return "error"

    convert_opts = pacsv.ConvertOptions(include_columns=include, column_types=types or {}, strings_can_be_null=False)

    def parse(piece: bytes) -> pa.Table:
        # Single-threaded: pyarrow then reports row numbers, and a piece is one block anyway.
        read_opts = pacsv.ReadOptions(use_threads=False, column_names=header, block_size=len(piece) + 1)
        parse_opts = pacsv.ParseOptions(invalid_row_handler=on_invalid, quote_char='"' if quoting else False)
        return pacsv.read_csv(pa.py_buffer(piece), read_options=read_opts, parse_options=parse_opts,
                              convert_options=convert_opts)

    with open(path, "rb") as fh:
        for _ in range(skip):
            fh.readline()
        line = skip + 1
        for piece in _pieces(fh, block_size):
            try:
                table = parse(piece)
            except pa.ArrowInvalid as exc:
                if "row" in bad:
                    r = bad["row"]
                    raise ValueError(f"{path}, line {line + r.number - 1}: expected {r.expected_columns} "
                                     f"columns ({','.join(header)}), got {r.actual_columns}: "
                                     f"{r.text[:200]!r}") from None
                raise csv_error(path, exc, header, line) from None
            if table.num_rows:
                yield line, table.combine_chunks().to_batches()[0]
            line += piece.count(b"\n")


def read_csv_table(path: Path, *, required: Iterable[str], include: list[str] | None = None,
                   types: dict | None = None) -> tuple[pa.Table, list[str]]:
    """A whole (moderate-size) CSV file with a header, with its columns checked first."""
    header = read_header(path)
    require_columns(path, header, required)
    include = [c for c in (include or header) if c in header]
    batches = [b for _, b in iter_csv(path, include=include, types=types)]
    if not batches:
        raise ValueError(f"{path}, line 2: file has a header but no rows")
    return pa.Table.from_batches(batches), header


def find_one(directory: Path, patterns: Iterable[str], what: str) -> Path:
    """The one file in directory matching the first pattern that matches anything."""
    if not directory.is_dir():
        raise FileNotFoundError(f"input directory {str(directory)!r} does not exist")
    patterns = list(patterns)
    for pattern in patterns:
        found = sorted(directory.glob(pattern))
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ValueError(f"{what}: several files in {str(directory)!r} match {pattern!r}: "
                             f"{[f.name for f in found]}; keep one")
    raise FileNotFoundError(f"{what}: no file in {str(directory)!r} matches {' or '.join(patterns)}")


def print_summary(summary: dict, out_dir: Path | str) -> None:
    """A short human-readable view of summary.json on stdout."""
    lines = [f"{summary.get('dataset')} ({summary.get('mode')}): {summary['rows']:,} rows -> "
             f"{Path(out_dir) / DATA_FILE}" + ("  [up to date, not rebuilt]" if summary.get("skipped") else "")]
    lines.append(f"  {'domain':<8}{'rows':>12}{'train':>12}{'val':>11}{'test':>11}{'click rate':>12}")
    for dom, e in summary["domains"].items():
        lines.append(f"  {dom:<8}{e['rows']:>12,}{e['train_rows']:>12,}{e['val_rows']:>11,}{e['test_rows']:>11,}"
                     f"{e['click_rate']:>12.4f}")
    fields = ", ".join(f"{name}={info['vocab']}" for name, info in summary["fields"].items())
    lines.append(f"  fields ({len(summary['fields'])}, vocabulary incl. id 0): {fields}")
    for note in summary.get("notes", []):
        lines.append(f"  note: {note}")
    lines.append(f"  summary: {Path(out_dir) / SUMMARY_FILE}")
    print("\n".join(lines), flush=True)


def finite_json(x):
    """NaN -> None so summary.json is strict JSON."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: finite_json(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite_json(v) for v in x]
    return x
