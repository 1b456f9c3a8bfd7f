"""Ali-CCP from its official raw files (or the processed CSV layout of common public scripts).

    python -m model.datasets prepare aliccp --raw DIR --out OUT [--min-count 10] [--seed 0] [--fields 101,205,...]
                                            [--block-mb 32] [--force]
    python -m model.datasets prepare aliccp --processed DIR --out OUT

Raw layout (DIR): sample_skeleton_{train,test}.csv (sample_id, click, purchase, common_feature_index,
feature_num, feature_list) and common_features_{train,test}.csv (common_feature_index, num,
feature_list); no header line (one is skipped if present). A feature list is entries
`field \\x02 feature_id \\x03 value` joined by `\\x01`. What is done:
  * Rows of sample_skeleton_*; the user-side fields come from the common_features row with the same
    common_feature_index (train rows from the train file, test rows from the test file). A skeleton
    row whose index is not in its common file keeps only its own fields (counted in the summary).
  * One id per field: the first entry of the field in the row's list (skeleton entries before
    common ones). Fields 210, 853 and the `_14` behaviour fields can list several ids; the summary
    counts the rows where that happened. Entry values (after \\x03) are not used.
  * Rows with click = 0 and purchase = 1 are dropped (train and test). Label: click.
  * Domain: field 301. Its distinct ids in train, in increasing order, are S1, S2, S3 (full scale:
    1 -> 32.2 M rows, 2 -> 0.64 M, 3 -> 52.4 M in the processed layout's numbering; check the
    summary's domain_map and row counts). Rows without field 301 are dropped; a domain needs >= 1
    train row and >= 2 test rows, else it is dropped (reported).
  * Vocabulary: per field, ids seen >= --min-count (10) times in train rows get 1..K in increasing raw
    id order; rare, unseen and absent ids get 0. domain_id = domain index + 1 (not filtered).
  * Split: train = the official train file; the official test file is split 50/50 into validation
    and test by a seeded random draw within each domain (each block of rows is split per domain, an
    odd row alternating between the two), so every domain with >= 2 test rows is in both.
  * Fields: 101 -> user_id, 205 -> item_id, 301 -> domain_id, any other field F -> "fF"
    (e.g. f121, f109_14). The users column (gAUC groups) is the raw field-101 id.
Memory: every file is read in pieces of --block-mb (32) MB cut at line ends, each parsed
with pyarrow.csv (see model.datasets.prepare.iter_csv; pyarrow's own streaming reader buffers up to
~32 blocks ahead). Pass 1 parses each piece, counts ids (memory proportional to the vocabulary, see
model.datasets.prepare.IdCounter) and spills the piece's raw ids (rows x fields int64, about 200 bytes a
row: ~17 GB of temporary disk at full scale) to a folder next to the output; pass 2 remaps the
spilled blocks and writes Parquet row groups. The common_features table of one file is held in
memory (a pandas Index of common_feature_index strings plus a (rows, fields) int64 matrix: about
0.3 GB for the 0.73 M rows of the full train file); it is released before the next file. Peak
memory is therefore a few hundred MB plus that table and the id counts, whatever the skeleton size
(benchmarks/aliccp_prepare.py measures it).

Processed layout (DIR): one *train*.csv, one *test*.csv and optionally one *val*.csv (if absent, the
test file is split as above), with a header: click, [purchase], 301 and any subset of the known
sparse fields, ids already encoded 1..V with 0 = rare. Dense `D*` columns and unknown columns are
ignored (listed in the summary). The drop rule applies when purchase is present. Ids are kept as
given (vocabulary = max id + 1) unless --min-count is given, which re-counts them on train. Domains
are named S<value of 301>.
"""
from __future__ import annotations

import abc

import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from model.datasets.prepare import (MISSING, IdCounter, ParquetSink, SplitStats, finite_json, fingerprint,
                                    iter_csv, kept_ids, log, read_header, remap, require_columns, run_prepare)

KNOWN_FIELDS = ("101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207", "210", "216",
                "508", "509", "702", "853", "301", "109_14", "110_14", "127_14", "150_14")
PRIOR_NAMES = {"101": "user_id", "205": "item_id", "301": "domain_id"}
DOMAIN_FIELD = "301"
SKELETON_COLUMNS = ["sample_id", "click", "purchase", "common_feature_index", "feature_num", "feature_list"]
COMMON_COLUMNS = ["common_feature_index", "num", "feature_list"]
# One entry: digits/underscore field, digits id, any value. (Strict and about twice as fast as a
# loose pattern; entries it rejects are diagnosed with LOOSE_ENTRY_RE for the error message.)
ENTRY_RE = r"^(?P<field>[0-9_]+)\x02(?P<id>[0-9]+)\x03[^\x01\x02\x03]*$"
LOOSE_ENTRY_RE = r"^(?P<field>[^\x01\x02\x03]+)\x02(?P<id>[^\x01\x02\x03]+)\x03(?P<value>[^\x01\x02\x03]*)$"
BLOCK_SIZE = 32 << 20  # bytes of CSV per streamed block
PROGRESS_EVERY_S = 10.0


def field_name(field: str) -> str:
    return PRIOR_NAMES.get(field, f"f{field}")


def _check_fields(fields) -> tuple[str, ...]:
    if fields is None:
        return KNOWN_FIELDS
    fields = tuple(fields)
    unknown = [f for f in fields if f not in KNOWN_FIELDS]
    if unknown:
        raise ValueError(f"unknown AliCCP field(s) {unknown}; known fields: {list(KNOWN_FIELDS)}")
    if DOMAIN_FIELD not in fields:
        raise ValueError(f"field {DOMAIN_FIELD} (the domain) is required in --fields, got {list(fields)}")
    return tuple(f for f in KNOWN_FIELDS if f in fields)


# ---- entry points ------------------------------------------------------------------------------

def prepare_raw(raw_dir, out_dir, *, min_count: int = 10, seed: int = 0, fields=None, force: bool = False,
                block_size: int = BLOCK_SIZE) -> dict:
    raw = Path(raw_dir)
    if not raw.is_dir():
        raise FileNotFoundError(f"AliCCP raw directory {str(raw)!r} does not exist")
    files = {}
    for part in ("train", "test"):
        for kind in ("sample_skeleton", "common_features"):
            path = raw / f"{kind}_{part}.csv"
            if not path.is_file():
                raise FileNotFoundError(f"AliCCP raw file {str(path)!r} does not exist (the raw layout needs "
                                        f"sample_skeleton_{{train,test}}.csv and common_features_{{train,test}}.csv)")
            files[kind, part] = path
    fields = _check_fields(fields)
    if min_count < 1:
        raise ValueError(f"--min-count must be >= 1, got {min_count}")
    options = {"min_count": min_count, "seed": seed, "fields": list(fields), "block_size": block_size}
    fp = fingerprint("aliccp", "raw", files.values(), options)
    return run_prepare(out_dir, fp, force, lambda tmp: _RawBuild(files, fields, options, tmp).run())


def prepare_processed(processed_dir, out_dir, *, min_count: int | None = None, seed: int = 0, fields=None,
                      force: bool = False, block_size: int = BLOCK_SIZE) -> dict:
    src = Path(processed_dir)
    if not src.is_dir():
        raise FileNotFoundError(f"AliCCP processed directory {str(src)!r} does not exist")
    files = {}
    for part in ("train", "val", "test"):
        found = sorted(p for p in src.glob(f"*{part}*.csv"))
        if len(found) > 1:
            raise ValueError(f"several files in {str(src)!r} match *{part}*.csv: {[p.name for p in found]}; keep one")
        if not found and part != "val":
            raise FileNotFoundError(f"no *{part}*.csv in AliCCP processed directory {str(src)!r}")
        if found:
            files[part] = found[0]
    if fields is not None:
        fields = _check_fields(fields)
    if min_count is not None and min_count < 1:
        raise ValueError(f"--min-count must be >= 1, got {min_count}")
    options = {"min_count": min_count, "seed": seed, "fields": None if fields is None else list(fields),
               "block_size": block_size}
    fp = fingerprint("aliccp", "processed", files.values(), options)
    return run_prepare(out_dir, fp, force, lambda tmp: _ProcessedBuild(files, fields, options, tmp).run())


# ---- parsing -----------------------------------------------------------------------------------

def parse_feature_lists(fl: pa.Array, known: pa.Array, path: Path, first_line: int,
                        column: str = "feature_list") -> tuple[np.ndarray, np.ndarray, dict]:
    """Feature lists (n,) -> raw ids (n, F) int64 (first entry per field; MISSING if absent).

    Also returns (n, F) bool: the field had several entries in the row; and {unknown field: entries}.
    A malformed entry or non-numeric id raises ValueError naming file, line, column and entry.
    """
    n, F = len(fl), len(known)
    entries = pc.split_pattern(fl, "\x01")
    parents = pc.list_parent_indices(entries)
    flat = pc.list_flatten(entries)
    nonempty = pc.greater(pc.binary_length(flat), 0)  # an empty list (or a stray \x01) has no entry
    if not pc.all(nonempty).as_py():
        flat, parents = flat.filter(nonempty), parents.filter(nonempty)
    m = pc.extract_regex(flat, ENTRY_RE)
    if m.null_count:
        bad = int(np.flatnonzero(~m.is_valid().to_numpy(zero_copy_only=False))[0])
        loose = pc.extract_regex(flat[bad:bad + 1], LOOSE_ENTRY_RE)
        if loose.null_count:
            what = "malformed feature-list entry (expected field\\x02feature_id\\x03value)"
        elif not loose.field("field")[0].as_py().replace("_", "").isdigit():
            what = f"malformed field {loose.field('field')[0].as_py()!r} (fields are like 205 or 109_14)"
        else:
            what = f"non-numeric feature id {loose.field('id')[0].as_py()!r}"
        _raise_entry(path, first_line, column, entries, parents, flat, bad, what)
    field = pc.struct_field(m, "field")
    id_str = pc.struct_field(m, "id")
    code = pc.index_in(field, value_set=known)
    unknown, sel = {}, None
    if code.null_count:
        vc = pc.value_counts(field.filter(pc.is_null(code)))
        unknown = {str(v["values"]): int(v["counts"]) for v in vc.to_pylist()}
        valid = pc.is_valid(code)
        sel = np.flatnonzero(valid.to_numpy(zero_copy_only=False))
        code, id_str, kept_parents = code.filter(valid), id_str.filter(valid), parents.filter(valid)
    else:
        kept_parents = parents
    try:
        ids = pc.cast(id_str, pa.int64()).to_numpy()
    except pa.ArrowInvalid:  # digits only, so: too many of them
        lengths = pc.binary_length(id_str).to_numpy()
        bad = int(np.argmax(lengths))
        pos = bad if sel is None else int(sel[bad])
        _raise_entry(path, first_line, column, entries, parents, flat, pos,
                     f"feature id {id_str[bad].as_py()!r} does not fit in int64")
    rows = kept_parents.to_numpy().astype(np.int64)
    key = rows * F + code.to_numpy(zero_copy_only=False).astype(np.int64)
    out = np.full(n * F, MISSING, np.int64)
    multi = np.zeros(n * F, bool)
    if len(key):
        u, first, cnt = np.unique(key, return_index=True, return_counts=True)
        out[u] = ids[first]
        multi[u[cnt > 1]] = True
    return out.reshape(n, F), multi.reshape(n, F), unknown


def _raise_entry(path, first_line, column, entries, parents, flat, pos, what):
    row = int(parents[pos].as_py())
    # Position of the entry within its row's list (1-based), counting every \x01-separated piece.
    pieces = entries[row].as_py()
    text = flat[pos].as_py()
    k = pieces.index(text) + 1 if text in pieces else "?"
    raise ValueError(f"{path}, line {first_line + row}, column {column!r}, entry {k}: {what}: {text[:120]!r}")


def _parts(d: dict) -> dict:
    """Per-part counts keyed by input file part (the official test file is 'test')."""
    return {("test" if k == "test_half" else k): v for k, v in d.items()}


class _Progress:
    def __init__(self, path: Path):
        self.path, self.size = path, max(path.stat().st_size, 1)
        self.started = self.last = time.perf_counter()
        self.rows = self.bytes = 0

    def update(self, batch: pa.RecordBatch) -> None:
        self.rows += batch.num_rows
        self.bytes += batch.nbytes
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            log(f"aliccp: {self.path.name}: {self.rows:,} rows, ~{min(100.0, 100.0 * self.bytes / self.size):.0f}%, "
                f"{self.rows / (now - self.started):,.0f} rows/s")

    def done(self) -> None:
        secs = time.perf_counter() - self.started
        log(f"aliccp: {self.path.name}: {self.rows:,} rows in {secs:.1f} s ({self.rows / max(secs, 1e-9):,.0f} rows/s)")


def _has_header(path: Path, numeric_col: int) -> bool:
    """Official raw files have no header; accept one if its `numeric_col`-th token is not a number."""
    tokens = read_header(path)
    return len(tokens) <= numeric_col or not tokens[numeric_col].strip().lstrip("-").isdigit()


def _check_binary(values: np.ndarray, name: str, path: Path, first_line: int) -> None:
    bad = np.flatnonzero((values != 0) & (values != 1))
    if len(bad):
        raise ValueError(f"{path}, line {first_line + int(bad[0])}, column {name!r}: must be 0 or 1, "
                         f"got {int(values[bad[0]])}")


# ---- the two-pass build ------------------------------------------------------------------------

class _Build(abc.ABC):
    """Pass 1: parts -> spilled raw-id blocks + id counts; pass 2: remap, split, write Parquet.

    The two input layouts (raw, processed) differ only in how they read rows and name domains.
    """

    mode = ""

    def __init__(self, fields: tuple[str, ...], options: dict, tmp: Path):
        self.fields, self.options, self.tmp = fields, options, tmp
        self.F = len(fields)
        self.dom_col = fields.index(DOMAIN_FIELD)
        self.user_col = fields.index("101") if "101" in fields else None
        self.spill_dir = tmp.parent / f".spill-{tmp.name.strip('.')}"
        self.counter = IdCounter(self.F)
        self.spills: dict[str, list[Path]] = {}
        self.domain_rows: dict[str, dict[int, int]] = {}
        self.dropped = {"click0_purchase1": {}, "no_domain": {}, "domain_not_kept": {}}
        self.rows_in: dict[str, int] = {}
        self.multi = np.zeros(self.F, np.int64)
        self.max_id = np.full(self.F, -1, np.int64)
        self.unknown: dict[str, int] = {}
        self.notes: list[str] = []

    # pass 1 ----
    def spill(self, part: str, mat: np.ndarray, click: np.ndarray, purchase: np.ndarray | None) -> None:
        self.rows_in[part] = self.rows_in.get(part, 0) + len(click)
        keep = np.ones(len(click), bool)
        if purchase is not None:
            drop = (click == 0) & (purchase == 1)
            self.dropped["click0_purchase1"][part] = self.dropped["click0_purchase1"].get(part, 0) + int(drop.sum())
            keep &= ~drop
        no_dom = mat[:, self.dom_col] == MISSING
        self.dropped["no_domain"][part] = self.dropped["no_domain"].get(part, 0) + int((no_dom & keep).sum())
        keep &= ~no_dom
        mat, click = mat[keep], click[keep]
        if not len(click):
            return
        if part == "train":
            for f in range(self.F):
                if f != self.dom_col:
                    self.counter.add(f, mat[:, f])
        self.max_id = np.maximum(self.max_id, mat.max(axis=0))
        dom, cnt = np.unique(mat[:, self.dom_col], return_counts=True)
        rows = self.domain_rows.setdefault(part, {})
        for d, c in zip(dom.tolist(), cnt.tolist()):
            rows[d] = rows.get(d, 0) + c
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self.spill_dir / f"{part}_{len(self.spills.setdefault(part, [])):06d}.npy"
        np.save(path, np.column_stack([mat, click.astype(np.int64)]))
        self.spills[part].append(path)

    # domains and vocabularies ----
    @abc.abstractmethod
    def domain_name(self, value: int, rank: int) -> str:
        """The name of the domain whose field-301 id is value (rank: its order among kept ids)."""

    def choose_domains(self) -> None:
        train = self.domain_rows.get("train", {})
        if not train:
            raise ValueError("no training rows with a domain (field 301) remain after the drop rule")
        values = sorted(train)
        names = {v: self.domain_name(v, r) for r, v in enumerate(values)}
        eval_parts = [p for p in ("val", "test", "test_half") if p in self.spills or p in self.domain_rows]
        kept, dropped = [], {}
        for v in values:
            if "test_half" in eval_parts:
                ok = self.domain_rows.get("test_half", {}).get(v, 0) >= 2
            else:
                ok = all(self.domain_rows.get(p, {}).get(v, 0) >= 1 for p in ("val", "test"))
            (kept if ok else dropped.setdefault("x", [])).append(v)
        if not kept:
            raise ValueError(f"no domain (field 301 value) has rows in train, validation and test: "
                             f"train {train}, others { {p: self.domain_rows.get(p, {}) for p in eval_parts} }")
        for v in dropped.get("x", []):
            msg = (f"domain {names[v]} (field 301 id {v}) dropped: {train[v]} train rows but too few evaluation "
                   f"rows ({ {p: self.domain_rows.get(p, {}).get(v, 0) for p in eval_parts} })")
            self.notes.append(msg)
            log(f"aliccp: {msg}")
        only_eval = sorted({v for p in eval_parts for v in self.domain_rows.get(p, {})} - set(train))
        if only_eval:
            self.notes.append(f"field 301 ids {only_eval} occur only outside train; their rows are dropped")
        self.domain_values = np.array(kept, np.int64)
        self.domain_names = tuple(names[v] for v in kept)
        msg = f"domains: field 301 ids {kept} -> {list(self.domain_names)}"
        self.notes.append(msg)
        log(f"aliccp: {msg}")

    def vocabularies(self) -> None:
        """self.kept[f]: sorted raw ids kept (None = keep ids as given); self.vocab[f]."""
        min_count = self.options["min_count"]
        self.kept, self.vocab, self.distinct = [], [], []
        for f in range(self.F):
            if f == self.dom_col:
                self.kept.append(None)
                self.vocab.append(len(self.domain_values) + 1)
                self.distinct.append(len(self.domain_values))
                continue
            keys, counts = self.counter.table(f)
            self.distinct.append(len(keys))
            if min_count is None:
                self.kept.append(None)
                self.vocab.append(int(max(self.max_id[f], 0)) + 1)
            else:
                kept = kept_ids(keys, counts, min_count)
                self.kept.append(kept)
                self.vocab.append(len(kept) + 1)

    # pass 2 ----
    def write(self) -> tuple[SplitStats, np.ndarray]:
        S = len(self.domain_names)
        stats = SplitStats(S)
        zeros_train = np.zeros(self.F, np.int64)
        rng = np.random.default_rng(self.options["seed"])
        odd_to_val = np.ones(S, bool)
        names = tuple(field_name(f) for f in self.fields)
        sink = ParquetSink(self.tmp, name="aliccp", field_names=names, vocab_sizes=tuple(self.vocab),
                           domain_names=self.domain_names)
        try:
            for part in ("train", "val", "test", "test_half"):
                for path in self.spills.get(part, []):
                    block = np.load(path)
                    mat, click = block[:, :self.F], block[:, self.F]
                    dom_raw = mat[:, self.dom_col]
                    pos = np.minimum(np.searchsorted(self.domain_values, dom_raw), S - 1)
                    ok = self.domain_values[pos] == dom_raw
                    n_bad = int((~ok).sum())
                    if n_bad:
                        self.dropped["domain_not_kept"][part] = self.dropped["domain_not_kept"].get(part, 0) + n_bad
                        mat, click, pos = mat[ok], click[ok], pos[ok]
                    if not len(click):
                        continue
                    domains = pos.astype(np.int64)
                    feats = np.empty_like(mat)
                    for f in range(self.F):
                        if f == self.dom_col:
                            feats[:, f] = domains + 1
                        elif self.kept[f] is None:
                            feats[:, f] = np.where(mat[:, f] == MISSING, 0, mat[:, f])
                        else:
                            feats[:, f] = remap(mat[:, f], self.kept[f])
                    users = mat[:, self.user_col] if self.user_col is not None else np.zeros(len(click), np.int64)
                    users = np.where(users == MISSING, -1, users)
                    if part == "train":
                        split = np.zeros(len(click), np.int8)
                        zeros_train += (feats == 0).sum(axis=0)
                    elif part == "val":
                        split = np.ones(len(click), np.int8)
                    elif part == "test":
                        split = np.full(len(click), 2, np.int8)
                    else:
                        split = np.full(len(click), 2, np.int8)
                        for d in np.unique(domains):
                            idx = rng.permutation(np.flatnonzero(domains == d))
                            k = len(idx) // 2
                            if len(idx) % 2:
                                k += int(odd_to_val[d])
                                odd_to_val[d] = not odd_to_val[d]
                            split[idx[:k]] = 1
                    stats.add(click.astype(np.float64), domains, split)
                    sink.write(feats, click, domains, users, split)
        finally:
            sink.close()
        stats.check(self.domain_names)
        return stats, zeros_train

    def run(self) -> dict:
        try:
            self.read()
            self.choose_domains()
            self.vocabularies()
            stats, zeros_train = self.write()
        finally:
            shutil.rmtree(self.spill_dir, ignore_errors=True)
        n_train = max(int(stats.rows[0].sum()), 1)
        fields = {}
        for f, raw_field in enumerate(self.fields):
            info = {"source": f"field {raw_field}", "vocab": int(self.vocab[f]),
                    "distinct_in_train": int(self.distinct[f]),
                    "train_rows_at_id0": round(float(zeros_train[f]) / n_train, 6)}
            if f == self.dom_col:
                info["source"] += " (domain index + 1; not frequency filtered)"
            elif self.kept[f] is None:
                info["source"] += " (ids kept as given)"
            if self.multi[f]:
                info["rows_with_several_ids"] = int(self.multi[f])
            fields[field_name(raw_field)] = info
        if self.unknown:
            self.notes.append(f"entries of fields outside the used set were ignored: {self.unknown}")
        summary = {
            "dataset": "aliccp", "mode": self.mode, "name": "aliccp",
            **stats.to_summary(self.domain_names),
            "rows_in_input": _parts(self.rows_in),
            "domain_map": {name: {"field_301_id": int(v)} for name, v in zip(self.domain_names, self.domain_values)},
            "fields": fields,
            "fields_used": list(self.fields),
            "dropped_rows": {k: {p: n for p, n in _parts(v).items() if n} for k, v in self.dropped.items()
                             if any(v.values())},
            **self.extra_summary(),
            "options": self.options,
            "notes": self.notes,
        }
        return finite_json(summary)

    def extra_summary(self) -> dict:
        return {}

    @abc.abstractmethod
    def read(self) -> None:
        """Pass 1 over the input files: call spill() for each block of rows."""


class _RawBuild(_Build):
    mode = "raw"

    def __init__(self, files: dict, fields, options, tmp):
        super().__init__(fields, options, tmp)
        self.files = files
        self.known = pa.array(list(fields))
        self.common_info: dict[str, dict] = {}

    def domain_name(self, value: int, rank: int) -> str:
        return f"S{rank + 1}"

    def _parse(self, fl, path, first_line):
        mat, multi, unknown = parse_feature_lists(fl, self.known, path, first_line)
        for k, v in unknown.items():
            self.unknown[k] = self.unknown.get(k, 0) + v
        return mat, multi

    def read_common(self, path: Path) -> tuple[pd.Index, np.ndarray, np.ndarray]:
        keys, mats, multis = [], [], []
        progress = _Progress(path)
        header = _has_header(path, 1)
        for first_line, batch in iter_csv(path, column_names=COMMON_COLUMNS, skip_rows=int(header),
                                          include=["common_feature_index", "feature_list"],
                                          types={"common_feature_index": pa.string(), "feature_list": pa.string()},
                                          block_size=self.options["block_size"], quoting=False):
            mat, m = self._parse(batch.column("feature_list"), path, first_line)
            keys.append(batch.column("common_feature_index").to_numpy(zero_copy_only=False))
            mats.append(mat)
            multis.append(m)
            progress.update(batch)
        progress.done()
        keys = np.concatenate(keys) if keys else np.empty(0, object)
        mat = np.concatenate(mats) if mats else np.empty((0, self.F), np.int64)
        multi = np.concatenate(multis) if multis else np.empty((0, self.F), bool)
        index = pd.Index(keys)
        dups = 0
        if not index.is_unique:
            first = ~index.duplicated()
            dups = int((~first).sum())
            index, mat, multi = index[first], mat[first], multi[first]
            self.notes.append(f"{path.name}: {dups} duplicate common_feature_index rows ignored (first kept)")
        self.common_info[path.name] = {"rows": len(keys), "duplicate_keys": dups}
        return index, mat, multi

    def read(self) -> None:
        for part in ("train", "test"):
            index, common, common_multi = self.read_common(self.files["common_features", part])
            path = self.files["sample_skeleton", part]
            progress = _Progress(path)
            header = _has_header(path, 1)
            unmatched = 0
            for first_line, batch in iter_csv(path, column_names=SKELETON_COLUMNS, skip_rows=int(header),
                                              include=["click", "purchase", "common_feature_index", "feature_list"],
                                              types={"click": pa.int64(), "purchase": pa.int64(),
                                                     "common_feature_index": pa.string(), "feature_list": pa.string()},
                                              block_size=self.options["block_size"], quoting=False):
                for c in ("click", "purchase"):
                    if batch.column(c).null_count:
                        r = int(np.flatnonzero(batch.column(c).is_null().to_numpy(zero_copy_only=False))[0])
                        raise ValueError(f"{path}, line {first_line + r}, column {c!r}: empty value (must be 0 or 1)")
                click = batch.column("click").to_numpy()
                purchase = batch.column("purchase").to_numpy()
                _check_binary(click, "click", path, first_line)
                _check_binary(purchase, "purchase", path, first_line)
                mat, multi = self._parse(batch.column("feature_list"), path, first_line)
                ci = index.get_indexer(batch.column("common_feature_index").to_numpy(zero_copy_only=False))
                unmatched += int((ci < 0).sum())
                if len(common):
                    hit = ci >= 0
                    cm = common[np.maximum(ci, 0)]
                    cm[~hit] = MISSING
                    # A field listed in both the skeleton and the common row, or several times in the
                    # common row, is multi-valued for this row too.
                    multi = (multi | ((mat != MISSING) & (cm != MISSING))
                             | (common_multi[np.maximum(ci, 0)] & hit[:, None]))
                    mat = np.where(mat == MISSING, cm, mat)
                self.multi += multi.sum(axis=0)
                self.spill("train" if part == "train" else "test_half", mat, click, purchase)
                progress.update(batch)
            progress.done()
            self.common_info[path.name] = {"rows": progress.rows, "rows_without_common_features": unmatched}
            if unmatched:
                self.notes.append(f"{path.name}: {unmatched:,} rows whose common_feature_index is not in "
                                  f"{self.files['common_features', part].name} (their user-side fields get id 0)")
            del index, common, common_multi

    def extra_summary(self) -> dict:
        return {"inputs": self.common_info}


class _ProcessedBuild(_Build):
    mode = "processed"

    def __init__(self, files: dict, fields, options, tmp):
        self.files = files
        headers = {part: read_header(path) for part, path in files.items()}
        train_header = headers["train"]
        for part, path in files.items():
            require_columns(path, headers[part], ("click", DOMAIN_FIELD))
        if fields is None:
            fields = tuple(f for f in KNOWN_FIELDS if f in train_header)
        for part, path in files.items():
            require_columns(path, headers[part], fields)
        self.has_purchase = all("purchase" in h for h in headers.values())
        self.ignored = [c for c in train_header if c not in fields and c not in ("click", "purchase")]
        super().__init__(fields, options, tmp)
        if "101" not in fields:
            self.notes.append("no field 101: no user_id field (pg/peg gating needs it) and gAUC has one group")
        if "205" not in fields:
            self.notes.append("no field 205: no item_id field (pg/peg gating needs it)")
        if not self.has_purchase:
            self.notes.append("no purchase column in every file: the click=0 & purchase=1 drop rule is not applied")
        if self.ignored:
            self.notes.append(f"columns not used: {self.ignored} (dense D* columns: the model takes ids only)")
        if "val" not in files:
            self.notes.append(f"no validation file: {files['test'].name} is split 50/50 into validation and test")
        missing_known = [f for f in KNOWN_FIELDS if f not in fields]
        if missing_known:
            self.notes.append(f"known AliCCP fields not used (absent or not selected): {missing_known}")

    def domain_name(self, value: int, rank: int) -> str:
        return f"S{value}"

    def read(self) -> None:
        for part, path in self.files.items():
            cols = ["click"] + (["purchase"] if self.has_purchase else []) + list(self.fields)
            progress = _Progress(path)
            target = "test_half" if part == "test" and "val" not in self.files else part
            for first_line, batch in iter_csv(path, include=cols, types={c: pa.int64() for c in cols},
                                              block_size=self.options["block_size"]):
                for c in cols:
                    if batch.column(c).null_count:
                        r = int(np.flatnonzero(batch.column(c).is_null().to_numpy(zero_copy_only=False))[0])
                        raise ValueError(f"{path}, line {first_line + r}, column {c!r}: empty value (ids are 0..V)")
                click = batch.column("click").to_numpy()
                _check_binary(click, "click", path, first_line)
                purchase = None
                if self.has_purchase:
                    purchase = batch.column("purchase").to_numpy()
                    _check_binary(purchase, "purchase", path, first_line)
                mat = np.stack([batch.column(f).to_numpy() for f in self.fields], axis=1).astype(np.int64)
                neg = np.argwhere(mat < 0)
                if len(neg):
                    r, f = neg[0]
                    raise ValueError(f"{path}, line {first_line + int(r)}, column {self.fields[f]!r}: "
                                     f"negative id {int(mat[r, f])} (processed ids are 0..V)")
                self.spill(target, mat, click, purchase)
                progress.update(batch)
            progress.done()

    def extra_summary(self) -> dict:
        return {"inputs": {part: path.name for part, path in self.files.items()}, "ignored_columns": self.ignored}
