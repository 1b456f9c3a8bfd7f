"""Helpers shared by the preparers (model/datasets/prepare.py)."""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from model.data import MultiDomainData
from model.datasets.prepare import (MISSING, IdCounter, ParquetSink, PreparedOutput, iter_csv, kept_ids, remap,
                                    run_prepare, stratified_split)


def test_parquet_sink_writes_save_parquets_layout(tmp_path, tiny):
    tiny.save_parquet(tmp_path / "ref.parquet")
    sink = ParquetSink(tmp_path / "sink.parquet", name=tiny.name, field_names=tiny.field_names,
                       vocab_sizes=tiny.vocab_sizes, domain_names=tiny.domain_names)
    n = tiny.num_rows
    for a in range(0, n, 7000):  # several row groups
        b = min(a + 7000, n)
        sink.write(tiny.features[a:b].numpy(), tiny.labels[a:b].numpy(), tiny.domains[a:b].numpy(),
                   tiny.users[a:b].numpy(), tiny.split[a:b].numpy())
    sink.close()
    ref, got = pq.read_schema(tmp_path / "ref.parquet"), pq.read_schema(tmp_path / "sink.parquet")
    assert got.names == [*tiny.field_names, "__label", "__domain", "__user", "__split"]
    assert [f.type for f in got] == [f.type for f in ref if f.name != "__truth"]
    meta = lambda s: json.loads(s.metadata[b"crocodile"])  # noqa: E731
    assert meta(got) == meta(ref)
    back = MultiDomainData.load_parquet(tmp_path / "sink.parquet")
    for col in ("features", "labels", "domains", "users", "split"):
        assert torch.equal(getattr(back, col), getattr(tiny, col)), col
    assert back.truth is None


def test_id_counter_matches_brute_force_across_merges():
    rng = np.random.default_rng(0)
    counter = IdCounter(2, merge_every=50)  # forces many merges
    chunks = [rng.zipf(1.5, (300, 2)).astype(np.int64) for _ in range(20)]
    for c in chunks:
        c[rng.random(300) < 0.1, 1] = MISSING
        for f in range(2):
            counter.add(f, c[:, f])
    allv = np.concatenate(chunks)
    for f in range(2):
        col = allv[:, f][allv[:, f] != MISSING]
        keys, counts = counter.table(f)
        ref_k, ref_c = np.unique(col, return_counts=True)
        assert np.array_equal(keys, ref_k) and np.array_equal(counts, ref_c)
        # Memory stays proportional to the vocabulary: the table has one entry per distinct id.
        assert len(keys) == len(ref_k) < len(col)
    values, counts = np.unique(allv[:, 0], return_counts=True)
    assert np.array_equal(kept_ids(*counter.table(0), 10), values[counts >= 10])
    assert 0 < (counts >= 10).sum() < len(values)


def test_remap_sends_rare_unseen_and_missing_to_zero():
    kept = np.array([3, 10, 42])
    raw = np.array([10, 3, 5, 42, 100, MISSING, -1, 3])
    assert remap(raw, kept).tolist() == [2, 1, 0, 3, 0, 0, 0, 1]
    assert remap(raw, np.array([], np.int64)).tolist() == [0] * 8


def test_stratified_split_puts_every_domain_in_every_split():
    domains = np.array([0] * 3 + [1] * 4 + [2] * 1000)
    split = stratified_split(domains, 3, seed=0)
    for d, n in ((0, 3), (1, 4), (2, 1000)):
        counts = np.bincount(split[domains == d], minlength=3)
        assert counts.sum() == n and (counts >= 1).all()
    assert np.bincount(split[domains == 2]).tolist() == [800, 100, 100]
    assert np.array_equal(split, stratified_split(domains, 3, seed=0))
    assert not np.array_equal(split, stratified_split(domains, 3, seed=1))
    with pytest.raises(ValueError, match="domain index 1 has 2 rows"):
        stratified_split(np.array([0, 0, 0, 1, 1]), 2, seed=0)


def test_failed_build_keeps_previous_output(tmp_path):
    out = tmp_path / "out"
    fp = {"v": 1}

    def good(tmp):
        sink = ParquetSink(tmp, name="x", field_names=("user_id",), vocab_sizes=(2,), domain_names=("A",))
        sink.write(np.array([[0], [1], [1]]), np.array([0, 1, 0]), np.zeros(3), np.arange(3), np.array([0, 1, 2]))
        sink.close()
        return {"dataset": "x", "rows": 3}

    run_prepare(out, fp, False, good)
    before = (out / "data.parquet").read_bytes(), json.loads((out / "summary.json").read_text())
    assert run_prepare(out, fp, False, good)["skipped"] is True

    def bad(tmp):
        tmp.write_bytes(b"half a parquet file")
        raise ValueError("input broke half-way")

    with pytest.raises(ValueError, match="half-way"):
        run_prepare(out, {"v": 2}, False, bad)
    assert (out / "data.parquet").read_bytes() == before[0]
    assert json.loads((out / "summary.json").read_text()) == before[1]
    assert sorted(p.name for p in out.iterdir()) == ["data.parquet", "summary.json"]  # no temp files left
    assert PreparedOutput(out).up_to_date(fp) is not None


def test_iter_csv_reads_in_pieces_and_locates_errors(tmp_path):
    path = tmp_path / "t.csv"
    rows = [f"{i},{i % 7},{'x' * (i % 13)}" for i in range(2000)]
    rows[700] = f"700,1,{'y' * 3000}"  # a line longer than a piece
    path.write_text("a,b,c\n" + "\n".join(rows))  # no final newline
    got = list(iter_csv(path, types={"a": pa.int64(), "b": pa.int64()}, block_size=1000))
    assert len(got) > 10  # many pieces
    assert sum(b.num_rows for _, b in got) == 2000
    for line, batch in got:  # each batch knows the file line of its first row
        assert batch.column("a")[0].as_py() == line - 2
    rows[1500] = "1500,seven,z"
    path.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"t.csv, line 1502, column 'b': non-numeric value .*'seven'"):
        list(iter_csv(path, types={"a": pa.int64(), "b": pa.int64()}, block_size=1000))
    rows[1500] = "1500,7"
    path.write_text("a,b,c\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"t.csv, line 1502: expected 3 columns \(a,b,c\), got 2: '1500,7'"):
        list(iter_csv(path, block_size=1000))


def test_describe_data_reads_only_metadata_and_fails_like_loading(tmp_path, tiny):
    from model.datasets import describe_data

    synthetic = describe_data("synthetic:tiny")
    assert (synthetic.domain_names, synthetic.field_names, synthetic.num_rows, synthetic.has_truth) == (
        tiny.domain_names, tiny.field_names, tiny.num_rows, True)
    tiny.save_parquet(tmp_path / "d.parquet")
    stored = describe_data(f"parquet:{tmp_path / 'd.parquet'}")
    assert (stored.domain_names, stored.field_names, stored.num_rows, stored.has_truth) == (
        tiny.domain_names, tiny.field_names, tiny.num_rows, True)
    with pytest.raises(FileNotFoundError, match="dataset file '/nonexistent.parquet' does not exist"):
        describe_data("parquet:/nonexistent.parquet")
    with pytest.raises(FileNotFoundError, match="prepare it first"):
        describe_data(f"kuairand1k:{tmp_path / 'none'}")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        describe_data(f"parquet:{tmp_path / 'bad.parquet'}")
