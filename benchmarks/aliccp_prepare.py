"""Throughput and peak memory of the AliCCP raw preparer on generated raw files.

Writes sample_skeleton_{train,test}.csv and common_features_{train,test}.csv in the official layout
(no header; feature lists `field\\x02id\\x03value` joined by `\\x01`) into a temporary folder, then
runs `prepare aliccp --raw` in a child process and reports rows/s and peak memory (the child's
ru_maxrss, plus its peak pyarrow pool and tracemalloc-tracked numpy/Python allocations).

    python benchmarks/aliccp_prepare.py [--rows 2000000] [--keep DIR] [--block-mb 32]

The generated data imitates Ali-CCP's shape, not its statistics: about 50 skeleton rows per common
row, user fields 101/121/122/124-129 and multi-valued 109_14/110_14/127_14/150_14 (1-30 ids each)
in the common file; item-side fields 205/206/207/210 (1-3 ids)/216/508/509/702/853 and the domain
field 301 (shares 38 % / 1 % / 61 %) in the skeleton; click rate ~4 %, purchase ~0.3 %.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

USER_SINGLE = {"101": 400_000, "121": 98, "122": 14, "124": 3, "125": 8, "126": 4, "127": 4, "128": 3, "129": 5}
USER_MULTI = {"109_14": 20_000, "110_14": 200_000, "127_14": 50_000, "150_14": 100_000}
ITEM_SINGLE = {"205": 500_000, "206": 7_000, "207": 250_000, "216": 100_000, "508": 6_000, "509": 100_000,
               "702": 50_000, "853": 37_000}
DOMAIN_SHARES = (0.38, 0.01, 0.61)
DOMAIN_IDS = (9_000_001, 9_000_002, 9_000_003)  # raw feature ids of field 301


def _field_offset(field: str) -> int:
    # Raw feature ids are global in Ali-CCP: give each field its own range.
    return (sum(ord(c) * 31**i for i, c in enumerate(field)) % 997 + 1) * 10_000_000


def _entries(field: str, ids: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(f"{field}\x02", pc.cast(pa.array(ids + _field_offset(field)), pa.string()),
                                       "\x031.0", "")


def _join_lists(counts: np.ndarray, flat_entries: pa.Array) -> pa.Array:
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), flat_entries), "\x01")


def _zipf(rng: np.random.Generator, vocab: int, n: int) -> np.ndarray:
    return (rng.zipf(1.3, n) - 1) % vocab


def _write(path: Path, table: pa.Table, first: bool) -> None:
    opts = pacsv.WriteOptions(include_header=False, quoting_style="none")
    with open(path, "ab" if not first else "wb") as fh:
        pacsv.write_csv(table, fh, write_options=opts)


def generate(out: Path, rows: int, seed: int = 0, chunk: int = 250_000) -> dict:
    """Write the four raw files with `rows` skeleton rows split evenly between train and test."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    sizes = {}
    for part, n in (("train", rows // 2), ("test", rows - rows // 2)):
        n_common = max(n // 50, 1)
        keys = pa.array([f"{k:016x}" for k in rng.integers(0, 2**63, n_common)])
        # common_features: common_feature_index, num, feature_list
        for a in range(0, n_common, chunk):
            m = min(chunk, n_common - a)
            cols = [_entries(f, _zipf(rng, v, m)) for f, v in USER_SINGLE.items()]
            lists = [pc.binary_join_element_wise(*cols, "\x01")]
            nums = np.full(m, len(USER_SINGLE))
            for f, v in USER_MULTI.items():
                counts = rng.integers(1, 31, m)
                lists.append(_join_lists(counts, _entries(f, _zipf(rng, v, int(counts.sum())))))
                nums = nums + counts
            table = pa.table({"common_feature_index": keys[a:a + m], "num": pa.array(nums),
                              "feature_list": pc.binary_join_element_wise(*lists, "\x01")})
            _write(out / f"common_features_{part}.csv", table, a == 0)
        # sample_skeleton: sample_id, click, purchase, common_feature_index, feature_num, feature_list
        for a in range(0, n, chunk):
            m = min(chunk, n - a)
            cols = [_entries(f, _zipf(rng, v, m)) for f, v in ITEM_SINGLE.items()]
            counts = rng.integers(1, 4, m)
            cols.append(_join_lists(counts, _entries("210", _zipf(rng, 90_000, int(counts.sum())))))
            domain = rng.choice(len(DOMAIN_IDS), m, p=DOMAIN_SHARES)
            domain_ids = pc.cast(pa.array(np.array(DOMAIN_IDS)[domain]), pa.string())
            cols.append(pc.binary_join_element_wise("301\x02", domain_ids, "\x031.0", ""))
            click = (rng.random(m) < 0.04).astype(np.int64)
            purchase = ((rng.random(m) < 0.08) & (click == 1) | (rng.random(m) < 0.0005)).astype(np.int64)
            table = pa.table({"sample_id": pa.array(np.arange(a, a + m) + 1), "click": pa.array(click),
                              "purchase": pa.array(purchase),
                              "common_feature_index": pc.take(keys, pa.array(rng.integers(0, n_common, m))),
                              "feature_num": pa.array(len(ITEM_SINGLE) + counts + 1),
                              "feature_list": pc.binary_join_element_wise(*cols, "\x01")})
            _write(out / f"sample_skeleton_{part}.csv", table, a == 0)
        for kind in ("sample_skeleton", "common_features"):
            sizes[f"{kind}_{part}.csv"] = (out / f"{kind}_{part}.csv").stat().st_size
    return sizes


def child(raw: str, out: str, block_mb: int) -> None:
    """Run the preparer in this (fresh) process and print its memory figures as JSON."""
    import tracemalloc

    from model.datasets import aliccp
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    summary = aliccp.prepare_raw(raw, out, force=True, block_size=block_mb << 20)
    seconds = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    print(json.dumps({"seconds": seconds, "rows_out": summary["rows"], "rows_in": summary["rows_in_input"],
                      "baseline_rss_kb": base_rss, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "tracemalloc_peak_bytes": traced_peak,
                      "pyarrow_peak_bytes": pa.default_memory_pool().max_memory(),
                      "domains": {d: e["rows"] for d, e in summary["domains"].items()}}))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000, help="skeleton rows, train + test (default 2M)")
    p.add_argument("--block-mb", type=int, default=32, help="CSV block size of the streaming reader")
    p.add_argument("--keep", default=None, help="generate into this folder and keep it (default: a temp dir)")
    p.add_argument("--child", nargs=2, metavar=("RAW", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(*args.child, args.block_mb)
        return {}
    with tempfile.TemporaryDirectory(prefix="aliccp_bench_") as tmp:
        raw = Path(args.keep) if args.keep else Path(tmp) / "raw"
        t0 = time.perf_counter()
        sizes = generate(raw, args.rows)
        gen_s = time.perf_counter() - t0
        total_mb = sum(sizes.values()) / 2**20
        print(f"generated {args.rows:,} skeleton rows ({total_mb:,.0f} MB raw CSV) in {gen_s:.1f} s", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", str(raw), str(Path(tmp) / "out"),
                               "--block-mb", str(args.block_mb)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        wall = time.perf_counter() - t0
        if proc.returncode:
            print(proc.stdout, proc.stderr, file=sys.stderr)
            raise SystemExit(proc.returncode)
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        result = {
            "rows": args.rows, "raw_mb": round(total_mb, 1), "prepare_s": round(res["seconds"], 2),
            "rows_per_s": round(args.rows / res["seconds"]), "mb_per_s": round(total_mb / res["seconds"], 1),
            "process_wall_s": round(wall, 2),
            "peak_rss_mb": round(max(child_peak, res["peak_rss_kb"]) / 1024, 1),
            "baseline_rss_mb_after_imports": round(res["baseline_rss_kb"] / 1024, 1),
            "pyarrow_peak_mb": round(res["pyarrow_peak_bytes"] / 2**20, 1),
            "tracemalloc_peak_mb": round(res["tracemalloc_peak_bytes"] / 2**20, 1),
            "rows_out": res["rows_out"], "domains": res["domains"],
        }
        print(json.dumps(result, indent=1))
        return result


if __name__ == "__main__":
    main()
