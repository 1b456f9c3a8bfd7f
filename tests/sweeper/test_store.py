import math

import pandas as pd
import pyarrow.parquet as pq
import pytest

from sweeper.schema import metric_names, row_schema
from sweeper.store import ResultsStore, load_results

DOMAINS = ("S0", "S1")
SCHEMA = row_schema(DOMAINS, False)


def ok(cell, seed, attempt=1, auc=0.7, **extra):
    return {"cell": cell, "seed": seed, "attempt": attempt, "status": "ok", "test_auc_overall": auc,
            "finished_at": 100.0 + attempt, **extra}


def failed(cell, seed, attempt=1, error="boom"):
    return {"cell": cell, "seed": seed, "attempt": attempt, "status": "failed", "error": error,
            "finished_at": 100.0 + attempt}


def test_rows_are_written_atomically_with_one_schema_and_read_back(tmp_path):
    store = ResultsStore(str(tmp_path / "sweep"))
    assert store.read().empty and store.stored() == (set(), set())
    store.write_row(failed("c1", 1), SCHEMA)  # a failed row first: pd.read_parquet still sees every column
    store.write_row(ok("c1", 0, expert_hidden=(8, 4)), SCHEMA)
    frame = pd.read_parquet(tmp_path / "sweep" / "results")
    assert list(frame.columns) == SCHEMA.names and len(frame) == 2
    assert set(metric_names(DOMAINS, False)) <= set(frame.columns)
    assert set(frame["expert_hidden"].dropna()) == {"8,4"}
    assert math.isnan(frame.loc[frame["status"] == "failed", "test_auc_overall"].iloc[0])
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "sweep" / "results").iterdir())
    with pytest.raises(ValueError, match=r"columns \['nope'\] that the results schema lacks"):
        store.write_row({**ok("c2", 0), "nope": 1}, SCHEMA)


def test_the_latest_attempt_wins_and_earlier_ones_are_kept_aside(tmp_path):
    store = ResultsStore(str(tmp_path))
    store.write_row(failed("c1", 0, attempt=1), SCHEMA)
    store.write_row(ok("c2", 0, attempt=1), SCHEMA)
    store.write_row(ok("c1", 0, attempt=2), SCHEMA)  # --rerun-failed
    store.write_row(failed("c2", 0, attempt=2), SCHEMA)  # --force, and it failed this time
    assert store.stored() == ({("c1", 0)}, {("c2", 0)})
    for frame in (pd.read_parquet(tmp_path / "results"), load_results(str(tmp_path))):
        assert sorted(zip(frame["cell"], frame["attempt"], frame["status"])) == [("c1", 2, "ok"), ("c2", 2, "failed")]
    history = load_results(str(tmp_path), all_attempts=True)
    assert sorted(zip(history["cell"], history["attempt"])) == [("c1", 1), ("c1", 2), ("c2", 1), ("c2", 2)]
    assert store.attempts() == {("c1", 0): 2, ("c2", 0): 2}
    assert store.has_row("c1", 0, 2) and not store.has_row("c1", 0, 3)
    assert store.read_row("c1", 0, 2)["status"] == "ok" and store.read_row("c1", 1) is None


def test_an_unreadable_file_is_set_aside_and_its_cell_runs_again(tmp_path, capsys, our_stderr):
    store = ResultsStore(str(tmp_path))
    kept = store.write_row(ok("c1", 0), SCHEMA)
    broken = store.write_row(ok("c2", 0), SCHEMA)
    data = open(broken, "rb").read()
    open(broken, "wb").write(data[: len(data) // 2])  # a partial write by another process / a full disk
    (tmp_path / "results" / "stray.parquet").write_bytes(b"")
    pq.write_table(pq.read_table(kept).select(["cell"]), tmp_path / "results" / "foreign.parquet")
    assert store.stored() == ({("c1", 0)}, set())
    err = capsys.readouterr().err
    assert err.count("warning: results file") == 3 and "moved to" in err and "runs again" in err
    assert sorted(p.rsplit("/", 1)[-1] for p in store.set_aside()) == sorted(
        ["foreign.parquet", "stray.parquet", broken.rsplit("/", 1)[-1]])
    assert len(pd.read_parquet(tmp_path / "results")) == 1  # the plain reader works again too
    assert store.read()["cell"].tolist() == ["c1"] and our_stderr() == ""


def test_text_and_bytes_files(tmp_path):
    store = ResultsStore(str(tmp_path / "s"))
    assert store.read_text("sweep.json") is None
    store.write_text("sweep.json", "{}")
    assert store.read_text("sweep.json") == "{}"
    path = store.write_bytes("models/m.pt", b"123")
    assert open(path, "rb").read() == b"123" and [p.name for p in (tmp_path / "s" / "models").iterdir()] == ["m.pt"]
