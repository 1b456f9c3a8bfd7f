from dataclasses import replace

import pytest
import torch

from model.data import MultiDomainData, random_split, rows_per_epoch, shuffled_batches
from model.datasets import load_data


def small_data(**changes):
    n = 30
    data = MultiDomainData(
        name="hand", features=torch.stack([torch.arange(n) % 4, torch.arange(n) % 3], dim=1),
        labels=(torch.arange(n) % 2).float(), domains=torch.arange(n) % 2, users=torch.arange(n) % 4,
        split=torch.tensor([0, 0, 1, 1, 2, 2] * 5, dtype=torch.int8), field_names=("user_id", "f"),
        vocab_sizes=(4, 3), domain_names=("A", "B"),
    )
    return replace(data, **changes)


def test_valid_data_passes_and_round_trips_through_parquet(tmp_path, tiny):
    small_data().validate()
    tiny.save_parquet(tmp_path / "d.parquet")
    back = MultiDomainData.load_parquet(tmp_path / "d.parquet")
    assert back.field_names == tiny.field_names and back.vocab_sizes == tiny.vocab_sizes
    assert back.domain_names == tiny.domain_names and back.name == tiny.name
    for col in ("features", "labels", "domains", "users", "split", "truth"):
        assert torch.equal(getattr(back, col), getattr(tiny, col)), col
    assert not (tmp_path / "d.parquet.tmp").exists()
    assert load_data(f"parquet:{tmp_path / 'd.parquet'}").num_rows == tiny.num_rows


@pytest.mark.parametrize("changes,message", [
    (dict(features=torch.stack([torch.arange(30) % 4, torch.arange(30) % 4], dim=1)),
     "field 'f' has id 3 at row 3, out of range of its vocabulary size 3"),
    (dict(features=torch.stack([torch.arange(30) % 4 - 1, torch.arange(30) % 3], dim=1)),
     "field 'user_id' has negative id -1 at row 0"),
    (dict(labels=torch.full((30,), 0.5)), "labels must be 0 or 1, got 0.5 at row 0"),
    (dict(domains=torch.zeros(30, dtype=torch.int64)), "domain 'B' has no rows in split 'train'"),
    (dict(labels=torch.zeros(29)), "column 'labels' has shape \\(29,\\) but features have 30 rows"),
    (dict(domains=torch.full((30,), 2)), "domain 2 at row 0 is outside \\[0, 2\\)"),
    (dict(vocab_sizes=(4,)), "2 feature columns but 2 field names and 1 vocabulary sizes"),
])
def test_validation_names_the_problem(changes, message):
    with pytest.raises(ValueError, match=message):
        small_data(**changes).validate()


def test_load_rejects_foreign_parquet(tmp_path):
    import pandas as pd
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="not a crocodile dataset"):
        MultiDomainData.load_parquet(tmp_path / "x.parquet")
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        MultiDomainData.load_parquet(tmp_path / "missing.parquet")


def test_random_split_fractions_and_determinism():
    split = random_split(1000, seed=3)
    assert torch.bincount(split.long()).tolist() == [800, 100, 100]
    assert torch.equal(split, random_split(1000, seed=3))
    assert not torch.equal(split, random_split(1000, seed=4))


def test_batches_depend_only_on_the_shuffle_generator():
    first = list(shuffled_batches(10, 4, torch.Generator().manual_seed(7), "cpu"))
    torch.manual_seed(123)  # the global (model-init) RNG does not affect the order
    second = list(shuffled_batches(10, 4, torch.Generator().manual_seed(7), "cpu"))
    assert [b.tolist() for b in first] == [b.tolist() for b in second]
    # Static shapes: the partial last batch is dropped; the rows it held are in another batch next epoch.
    assert [len(b) for b in first] == [4, 4] and len(set(torch.cat(first).tolist())) == 8
    assert rows_per_epoch(10, 4) == 8 and rows_per_epoch(3, 4) == 3 and rows_per_epoch(8, 4) == 8
    assert [len(b) for b in shuffled_batches(3, 4, torch.Generator(), "cpu")] == [3]  # one batch of all rows
    assert [len(b) for b in shuffled_batches(8, 4, torch.Generator(), "cpu")] == [4, 4]


def test_rank_shards_partition_each_global_batch():
    full = list(shuffled_batches(10, 4, torch.Generator().manual_seed(1), "cpu"))
    shards = [list(shuffled_batches(10, 4, torch.Generator().manual_seed(1), "cpu", rank=r, world_size=2))
              for r in range(2)]
    for step, batch in enumerate(full):
        assert sorted(torch.cat([shards[0][step], shards[1][step]]).tolist()) == sorted(batch.tolist())


def test_subset_and_summary(tiny):
    train = tiny.subset("train")
    assert len(train) == int((tiny.split == 0).sum())
    summary = tiny.summary()
    assert sum(v["rows"] for v in summary["per_split_domain"].values()) == tiny.num_rows
    with pytest.raises(ValueError, match="split must be one of"):
        tiny.subset("dev")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_range_check_paths_agree(dtype):
    from model.data import _fields_out_of_range

    features = torch.tensor([[0, 5, 2], [3, 1, -1], [2, 2, 1]], dtype=dtype)
    # Column 2 holds -1 (always bad); columns 0 and 1 are bad when their vocabulary is too small.
    for vocab, bad in (((4, 6, 3), [2]), ((3, 6, 3), [0, 2]), ((4, 5, 3), [1, 2]), ((2, 2, 9), [0, 1, 2])):
        assert _fields_out_of_range(features, vocab, use_numpy=True) == bad
        assert _fields_out_of_range(features, vocab, use_numpy=False) == bad
    fine = features.clamp_min(0)
    assert _fields_out_of_range(fine, (4, 6, 3), use_numpy=True) == []
    assert _fields_out_of_range(fine, (4, 6, 3), use_numpy=False) == []
