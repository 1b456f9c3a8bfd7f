"""KuaiRand-1K from its official files (or the merged layout of common public scripts) to our format.

    python -m model.datasets prepare kuairand1k --raw DIR --out OUT [--split random|time] [--min-count 10]
    python -m model.datasets prepare kuairand1k --merged FILE --out OUT

What is done (the paper's setup, with every choice that the paper leaves open written down here):
  * Rows: the standard logs `log_standard_*.csv` (log_random_* is not used). Label `is_click`.
  * Domains: the `--max-domains` (5) largest `tab` values, named S<tab> and ordered by tab value
    (full scale: S0, S1, S2, S4, S6). Rows of other tabs are dropped, and so is a kept tab with
    fewer than 3 rows (it could not appear in every split); both are reported.
  * Split: `random` (default) is a seeded 80/10/10 split done within each domain, so every domain
    has rows in each split even in tiny samples (see model.datasets.prepare.stratified_split); `time` cuts
    all rows at the 80 % and 90 % quantiles of `time_ms` (raw layout only) and fails with a clear
    message if a domain then misses a split.
  * Fields: user_id, item_id (video_id), domain_id (tab; = domain index + 1, not frequency
    filtered), the user feature columns, duration_ms (the log's video duration, bucketed to
    floor(2 * log2(1 + seconds))), and the basic video features author_id, video_type, upload_dt,
    upload_type, visible_status, server_width, server_height, music_id, music_type, tag (the first
    tag of a comma list). The user columns are all of user_features_1k.csv except user_id and the
    raw counts follow_user_num, fans_user_num, friend_user_num, register_days, whose bucketed
    `*_range` twins are used instead. Every feature value, range strings included, is a category;
    -124, NaN and empty are missing and get id 0. Post-impression outcomes (play time, likes, ...)
    are never features.
  * Vocabulary: per field, values seen >= --min-count (10) times in train rows get ids 1..K in
    sorted value order; everything else (rare, unseen in train, missing) gets id 0.
  * Users and videos missing from the feature files keep their ids; their feature fields get id 0
    (counted in the summary).
The whole log is processed in memory: about 0.4 GB per million log rows at peak on top of the
~0.3 GB of the imports (measured: 3 M generated rows, 1.4 GB, 14 s; 11.6 M rows: ~5 GB, ~1 min).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from model.datasets.prepare import (ParquetSink, SplitStats, find_one, finite_json, fingerprint, log,
                                    read_csv_table, read_header, require_columns, run_prepare, stratified_split)

USER_COLUMNS = (
    "user_id", "user_active_degree", "is_lowactive_period", "is_live_streamer", "is_video_author",
    "follow_user_num", "follow_user_num_range", "fans_user_num", "fans_user_num_range", "friend_user_num",
    "friend_user_num_range", "register_days", "register_days_range",
) + tuple(f"onehot_feat{i}" for i in range(18))
# Raw counts replaced by their bucketed twin.
RANGE_TWINS = {"follow_user_num": "follow_user_num_range", "fans_user_num": "fans_user_num_range",
               "friend_user_num": "friend_user_num_range", "register_days": "register_days_range"}
VIDEO_COLUMNS = ("author_id", "video_type", "upload_dt", "upload_type", "visible_status", "server_width",
                 "server_height", "music_id", "music_type", "tag")
LOG_REQUIRED = ("user_id", "video_id", "is_click", "tab")
# Outcomes observed after the impression: never features.
OUTCOME_COLUMNS = ("is_like", "is_follow", "is_comment", "is_forward", "is_hate", "long_view", "play_time_ms",
                   "profile_stay_time", "comment_stay_time", "is_profile_enter")
MISSING_STRINGS = pa.array(["", "-124", "-124.0", "nan", "NaN", "NULL", "null"])
_ID_TYPES = {"user_id": pa.int64(), "video_id": pa.int64(), "is_click": pa.int64(), "tab": pa.int64(),
             "time_ms": pa.int64(), "duration_ms": pa.float64()}
_CHUNK_ROWS = 1 << 18


class _Rows:
    """Maps a row of concatenated CSV files back to (file, line) for error messages."""

    def __init__(self):
        self.parts: list[tuple[Path, int]] = []  # (file, rows)

    def add(self, path: Path, rows: int) -> None:
        self.parts.append((path, rows))

    def where(self, row: int) -> str:
        for path, rows in self.parts:
            if row < rows:
                return f"{path}, line {row + 2}"
            row -= rows
        return "?"


# ---- entry points ------------------------------------------------------------------------------

def prepare_raw(raw_dir, out_dir, *, split: str = "random", min_count: int = 10, seed: int = 0,
                max_domains: int = 5, force: bool = False) -> dict:
    """Official KuaiRand-1K files in raw_dir -> out_dir/data.parquet + summary.json."""
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise FileNotFoundError(f"KuaiRand raw directory {str(raw)!r} does not exist")
    logs = sorted(raw.glob("log_standard_*.csv"))
    if not logs:
        hint = (f"; for a merged log (e.g. {sorted(raw.glob('log_merged*.csv'))[0].name}) use --merged FILE"
                if list(raw.glob("log_merged*.csv")) else "")
        raise FileNotFoundError(f"no log_standard_*.csv in {str(raw)!r} (the KuaiRand-1K standard logs){hint}")
    users_path = find_one(raw, ["user_features_1k.csv", "user_features*.csv"], "KuaiRand user features")
    videos_path = find_one(raw, ["video_features_basic_1k.csv", "video_features_basic*.csv"],
                           "KuaiRand basic video features")
    options = {"split": split, "min_count": min_count, "seed": seed, "max_domains": max_domains}
    fp = fingerprint("kuairand1k", "raw", [*logs, users_path, videos_path], options)
    return run_prepare(out_dir, fp, force, lambda tmp: _build_raw(logs, users_path, videos_path, tmp, options))


def prepare_merged(merged_file, out_dir, *, split: str = "random", min_count: int = 10, seed: int = 0,
                   max_domains: int = 5, force: bool = False) -> dict:
    """One CSV of log rows already joined with user and video columns -> out_dir."""
    path = Path(merged_file)
    if not path.is_file():
        raise FileNotFoundError(f"KuaiRand merged log {str(path)!r} does not exist")
    options = {"split": split, "min_count": min_count, "seed": seed, "max_domains": max_domains}
    fp = fingerprint("kuairand1k", "merged", [path], options)
    return run_prepare(out_dir, fp, force, lambda tmp: _build_merged(path, tmp, options))


# ---- building ----------------------------------------------------------------------------------

def _read_logs(paths: list[Path], need_time: bool) -> tuple[pa.Table, _Rows]:
    rows, tables = _Rows(), []
    required = LOG_REQUIRED + ("duration_ms",) + (("time_ms",) if need_time else ())
    for path in paths:
        table, _ = read_csv_table(path, required=required, include=list(required),
                                  types={c: _ID_TYPES[c] for c in required})
        tables.append(table)
        rows.add(path, table.num_rows)
        log(f"kuairand: read {path.name}: {table.num_rows:,} rows")
    return pa.concat_tables(tables), rows


def _unique_index(path: Path, table: pa.Table, column: str) -> pd.Index:
    missing = table.column(column).is_null().to_numpy(zero_copy_only=False)
    if missing.any():
        raise ValueError(f"{path}, line {int(np.flatnonzero(missing)[0]) + 2}, column {column!r}: empty id")
    ids = table.column(column).to_numpy()
    index = pd.Index(ids)
    if not index.is_unique:
        dup = int(np.flatnonzero(index.duplicated())[0])
        raise ValueError(f"{path}, line {dup + 2}, column {column!r}: duplicate id {int(ids[dup])} "
                         f"(each id must have one row)")
    return index


def _build_raw(logs: list[Path], users_path: Path, videos_path: Path, tmp: Path, options: dict) -> dict:
    table, rows = _read_logs(logs, need_time=options["split"] == "time")
    user_header = read_header(users_path)
    require_columns(users_path, user_header, USER_COLUMNS)
    users, _ = read_csv_table(users_path, required=USER_COLUMNS, include=list(USER_COLUMNS),
                              types={c: (pa.int64() if c == "user_id" else pa.string()) for c in USER_COLUMNS})
    video_cols = ("video_id",) + VIDEO_COLUMNS
    videos, _ = read_csv_table(videos_path, required=video_cols, include=list(video_cols),
                               types={c: (pa.int64() if c == "video_id" else pa.string()) for c in video_cols})
    log(f"kuairand: {users.num_rows:,} users in {users_path.name}, {videos.num_rows:,} videos in {videos_path.name}")
    user_index = _unique_index(users_path, users, "user_id")
    video_index = _unique_index(videos_path, videos, "video_id")
    sources = {
        "user": (users, user_index, [c for c in USER_COLUMNS if c != "user_id" and c not in RANGE_TWINS]),
        "video": (videos, video_index, list(VIDEO_COLUMNS)),
    }
    notes = [f"raw counts {sorted(RANGE_TWINS)} replaced by their *_range twins",
             f"files: {[p.name for p in logs]} + {users_path.name} + {videos_path.name}"]
    return _build(table, rows, sources, tmp, options, mode="raw", inputs=[*logs, users_path, videos_path],
                  ignored=[c for c in user_header if c in RANGE_TWINS]
                  + ["video_duration (duration_ms of the log used)"],
                  notes=notes)


def _build_merged(path: Path, tmp: Path, options: dict) -> dict:
    header = read_header(path)
    require_columns(path, header, LOG_REQUIRED)
    if options["split"] == "time":
        require_columns(path, header, ("time_ms",))
    user_cols = [c for c in USER_COLUMNS[1:] if c in header and not (c in RANGE_TWINS and RANGE_TWINS[c] in header)]
    video_cols = [c for c in VIDEO_COLUMNS if c in header]
    base = [c for c in LOG_REQUIRED + ("duration_ms", "time_ms") if c in header]
    used = base + user_cols + video_cols
    types = {c: _ID_TYPES[c] for c in base}
    types |= {c: pa.string() for c in user_cols + video_cols}
    table, _ = read_csv_table(path, required=LOG_REQUIRED, include=used, types=types)
    rows = _Rows()
    rows.add(path, table.num_rows)
    log(f"kuairand: read {path.name}: {table.num_rows:,} rows")
    # The row table is its own feature table (row i -> row i).
    sources = {"user": (table, None, user_cols), "video": (table, None, video_cols)}
    ignored = [c for c in header if c not in used]
    notes = [f"merged layout: features from columns {user_cols + video_cols}"]
    if "duration_ms" not in header:
        notes.append("no duration_ms column: the duration field is left out")
    outcome = [c for c in ignored if c in OUTCOME_COLUMNS]
    if outcome:
        notes.append(f"post-impression outcome columns not used as features: {outcome}")
    return _build(table, rows, sources, tmp, options, mode="merged", inputs=[path], ignored=ignored, notes=notes)


def _arrow_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, int]:
    """Category codes (n,) int64 in sorted value order, -1 for missing; and the number of values."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = pc.utf8_trim_whitespace(col)
    enc = pc.dictionary_encode(col)
    dictionary = enc.dictionary
    idx = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    missing = pc.is_in(pc.cast(dictionary, pa.string()), value_set=MISSING_STRINGS).to_numpy(zero_copy_only=False)
    order = pc.array_sort_indices(dictionary).to_numpy()
    order = order[~missing[order]]
    rank = np.full(len(dictionary), -1, np.int64)
    rank[order] = np.arange(len(order))
    return np.where(idx >= 0, rank[np.maximum(idx, 0)], -1), len(order)


def _first_tag(col: pa.ChunkedArray) -> pa.Array:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    return pc.list_element(pc.split_pattern(col, ","), 0)


def _duration_codes(ms: np.ndarray) -> tuple[np.ndarray, int]:
    ok = np.isfinite(ms) & (ms >= 0)
    bucket = np.where(ok, np.floor(2 * np.log2(1 + np.where(ok, ms, 0) / 1000.0)), -1).astype(np.int64)
    values, inv = np.unique(bucket[ok], return_inverse=True)
    codes = np.full(len(ms), -1, np.int64)
    codes[ok] = inv
    return codes, len(values)


def _filtered(codes: np.ndarray, n_values: int, train: np.ndarray, min_count: int) -> tuple[np.ndarray, dict]:
    """Codes -> ids: values with >= min_count train rows get 1..K (in code order), the rest 0."""
    valid = codes >= 0
    counts = np.bincount(codes[train & valid], minlength=n_values)
    keep = counts >= min_count
    new = np.where(keep, np.cumsum(keep), 0)
    ids = np.where(valid, new[np.maximum(codes, 0)], 0).astype(np.int32)
    n_train = int(train.sum())
    info = {"vocab": int(keep.sum()) + 1, "distinct_in_train": int((counts > 0).sum()),
            "train_rows_at_id0": round(float((ids[train] == 0).sum()) / max(n_train, 1), 6)}
    return ids, info


def _select_domains(tab: np.ndarray, max_domains: int, notes: list[str]) -> tuple[np.ndarray, dict]:
    values, counts = np.unique(tab, return_counts=True)
    by_size = sorted(zip(values.tolist(), counts.tolist()), key=lambda vc: (-vc[1], vc[0]))
    kept = [(v, c) for v, c in by_size[:max_domains] if c >= 3]
    small = [(v, c) for v, c in by_size[:max_domains] if c < 3]
    others = by_size[max_domains:]
    if not kept:
        raise ValueError(f"no tab value has the 3 rows needed for a train/val/test split (tabs: {dict(by_size)})")
    present = sorted(v for v, _ in kept)
    msg = f"domains: tab values {present} -> {['S%d' % v for v in present]}"
    if len(present) < max_domains:
        msg += f" (only {len(present)} tab value(s) with >= 3 rows in the input; the full KuaiRand-1K has 5)"
    log(f"kuairand: {msg}")
    notes.append(msg)
    dropped = {}
    if others:
        dropped |= {f"tab {v}": c for v, c in others}
        notes.append(f"dropped {sum(c for _, c in others):,} rows of tabs outside the {max_domains} largest: "
                     f"{dict(others)}")
    if small:
        dropped |= {f"tab {v}": c for v, c in small}
        notes.append(f"dropped tabs with fewer than 3 rows (cannot be split): {dict(small)}")
    if dropped:
        log(f"kuairand: {notes[-1]}")
    return np.array(present, np.int64), dropped


def _time_split(time_ms: np.ndarray, domains: np.ndarray, domain_names: tuple[str, ...]) -> np.ndarray:
    n = len(time_ms)
    order = np.argsort(time_ms, kind="stable")
    n_train, n_val = int(round(0.8 * n)), int(round(0.1 * n))
    split = np.empty(n, np.int8)
    split[order[:n_train]] = 0
    split[order[n_train:n_train + n_val]] = 1
    split[order[n_train + n_val:]] = 2
    for s, name in enumerate(("train", "val", "test")):
        present = np.unique(domains[split == s])
        for d, dom in enumerate(domain_names):
            if d not in present:
                raise ValueError(f"--split time leaves domain {dom!r} without {name} rows (its rows all fall in "
                                 f"other time ranges); use --split random, which splits within each domain")
    return split


def _build(table: pa.Table, rows: _Rows, sources: dict, tmp: Path, options: dict, *, mode: str,
           inputs: list[Path], ignored: list[str], notes: list[str]) -> dict:
    min_count = options["min_count"]
    if min_count < 1:
        raise ValueError(f"--min-count must be >= 1, got {min_count}")
    if options["split"] not in ("random", "time"):
        raise ValueError(f"--split must be 'random' or 'time', got {options['split']!r}")
    for c in LOG_REQUIRED + (("time_ms",) if options["split"] == "time" else ()):
        missing = table.column(c).is_null().to_numpy(zero_copy_only=False)
        if missing.any():
            raise ValueError(f"{rows.where(int(np.flatnonzero(missing)[0]))}, column {c!r}: empty value "
                             f"(every row needs {', '.join(LOG_REQUIRED)})")
    label = table.column("is_click").to_numpy()
    bad = np.flatnonzero((label != 0) & (label != 1))
    if len(bad):
        raise ValueError(f"{rows.where(int(bad[0]))}, column 'is_click': label must be 0 or 1, "
                         f"got {int(label[bad[0]])}")
    tab = table.column("tab").to_numpy()
    present, dropped = _select_domains(tab, options["max_domains"], notes)
    keep = np.isin(tab, present)
    rows_in = len(tab)
    idx = np.flatnonzero(keep)
    domain_names = tuple(f"S{v}" for v in present)
    domains = np.searchsorted(present, tab[idx]).astype(np.int64)
    label = label[idx]
    user_raw = table.column("user_id").to_numpy()[idx]
    video_raw = table.column("video_id").to_numpy()[idx]
    n, S = len(idx), len(domain_names)

    if options["split"] == "time":
        split = _time_split(table.column("time_ms").to_numpy()[idx], domains, domain_names)
    else:
        split = stratified_split(domains, S, options["seed"])
    train = split == 0

    fields: dict[str, dict] = {}
    columns: list[np.ndarray] = []

    def add(name: str, source: str, codes: np.ndarray, n_values: int, filtered: bool = True) -> None:
        if filtered:
            ids, info = _filtered(codes, n_values, train, min_count)
        else:
            ids, info = codes.astype(np.int32), {"vocab": n_values}
        fields[name] = {"source": source, **info}
        columns.append(ids)

    for name, raw in (("user_id", user_raw), ("item_id", video_raw)):
        values, codes = np.unique(raw, return_inverse=True)
        add(name, "user_id" if name == "user_id" else "video_id", codes.astype(np.int64), len(values))
    add("domain_id", "tab (domain index + 1; not frequency filtered)", domains + 1, S + 1, filtered=False)

    unmatched = {}
    for kind, (ftable, index, cols) in sources.items():
        if index is None:  # merged layout: the feature columns are on the rows themselves
            row_of = idx
        else:
            row_of = index.get_indexer(user_raw if kind == "user" else video_raw)
            unmatched[f"rows_without_{kind}_features"] = int((row_of < 0).sum())
        for c in cols:
            col = _first_tag(ftable.column(c)) if c == "tag" else ftable.column(c)
            codes, n_values = _arrow_codes(col)
            row_codes = np.where(row_of >= 0, codes[np.maximum(row_of, 0)], -1)
            add(c, c + (" (first tag)" if c == "tag" else ""), row_codes, n_values)
        if kind == "user" and "duration_ms" in table.column_names:
            ms = table.column("duration_ms").to_numpy(zero_copy_only=False)[idx].astype(np.float64)
            codes, n_values = _duration_codes(ms)
            add("duration_ms", "duration_ms (bucket floor(2*log2(1+seconds)))", codes, n_values)
    for k, v in unmatched.items():
        if v:
            kind = k.split("_")[-2]
            notes.append(f"{v:,} rows have no entry in the {kind} feature file; their {kind} fields get id 0")

    field_names = tuple(fields)
    vocab_sizes = tuple(info["vocab"] for info in fields.values())
    stats = SplitStats(S)
    stats.add(label.astype(np.float64), domains, split)
    stats.check(domain_names)
    sink = ParquetSink(tmp, name="kuairand1k", field_names=field_names, vocab_sizes=vocab_sizes,
                       domain_names=domain_names)
    try:
        for a in range(0, n, _CHUNK_ROWS):
            b = min(a + _CHUNK_ROWS, n)
            feats = np.stack([col[a:b] for col in columns], axis=1).astype(np.int64)
            sink.write(feats, label[a:b], domains[a:b], user_raw[a:b], split[a:b])
    finally:
        sink.close()
    summary = {
        "dataset": "kuairand1k", "mode": mode, "name": "kuairand1k",
        **stats.to_summary(domain_names),
        "rows_in_input": rows_in,
        "domain_map": {name: {"tab": int(v)} for name, v in zip(domain_names, present)},
        "fields": fields,
        "fields_used": [info["source"] for info in fields.values()],
        "ignored_columns": ignored,
        "dropped_rows": dropped,
        **unmatched,
        "options": options,
        "inputs": [p.name for p in inputs],
        "notes": notes,
    }
    return finite_json(summary)

