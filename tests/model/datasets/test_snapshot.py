"""The memory-mapped snapshot format (model/datasets/snapshot.py)."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from model.datasets.snapshot import load_snapshot, save_snapshot

COLUMNS = ("features", "labels", "domains", "users", "split", "truth")


def test_round_trip_is_exact_and_writable(tmp_path, tiny):
    back = load_snapshot(save_snapshot(tiny, tmp_path / "s"))
    for col in COLUMNS:
        a, b = getattr(tiny, col), getattr(back, col)
        assert a.dtype == b.dtype and torch.equal(a, b), col
    assert (back.name, back.field_names, back.vocab_sizes, back.domain_names) == \
           (tiny.name, tiny.field_names, tiny.vocab_sizes, tiny.domain_names)
    back.labels[0] = 1 - back.labels[0]  # copy-on-write: allowed, and the file is unchanged
    assert torch.equal(load_snapshot(tmp_path / "s").labels, tiny.labels)


def test_without_truth_and_second_writer_keeps_the_first(tmp_path, tiny):
    real = replace(tiny, truth=None)
    save_snapshot(real, tmp_path / "s")
    assert load_snapshot(tmp_path / "s").truth is None
    save_snapshot(tiny, tmp_path / "s")  # already there: kept as is, temp copy removed
    assert load_snapshot(tmp_path / "s").truth is None
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_damage_is_reported(tmp_path, tiny):
    path = save_snapshot(tiny, tmp_path / "s")
    np.save(path / "users.npy", tiny.users[:10].numpy())
    with pytest.raises(ValueError, match=r"users.npy is int64\(10,\), expected int64\(20000,\)"):
        load_snapshot(path)
    np.save(path / "users.npy", tiny.users.numpy())
    bad = tiny.features.clone()
    bad[5, 1] = tiny.vocab_sizes[1]
    np.save(path / "features.npy", bad.numpy())
    with pytest.raises(ValueError, match="field 'item_id' has id .* at row 5, out of range"):
        load_snapshot(path)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(ValueError, match="has format 99, expected 1"):
        load_snapshot(path)
