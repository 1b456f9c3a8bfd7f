import pandas as pd

from sweeper.store import ResultsStore


def test_rows_are_written_atomically_and_read_back(tmp_path):
    store = ResultsStore(str(tmp_path / "sweep"))
    assert store.read().empty and store.stored() == (set(), set())
    store.write_row({"cell": "c1", "seed": 0, "status": "ok", "expert_hidden": (8, 4), "test_auc_overall": 0.7})
    store.write_row({"cell": "c1", "seed": 1, "status": "failed", "error": "boom"})
    store.write_row({"cell": "c2", "seed": 0, "status": "failed", "error": "boom"})
    store.write_row({"cell": "c2", "seed": 0, "status": "ok", "test_auc_overall": 0.6})
    frame = pd.read_parquet(tmp_path / "sweep" / "results")
    assert len(frame) == 4 and set(frame["expert_hidden"].dropna()) == {"8,4"}
    ok, failed = store.stored()
    assert ok == {("c1", 0), ("c2", 0)}
    assert failed == {("c1", 1)}  # a failure later re-run ok no longer counts
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "sweep" / "results").iterdir())


def test_text_files(tmp_path):
    store = ResultsStore(str(tmp_path / "s"))
    assert store.read_text("sweep.json") is None
    store.write_text("sweep.json", "{}")
    assert store.read_text("sweep.json") == "{}"
