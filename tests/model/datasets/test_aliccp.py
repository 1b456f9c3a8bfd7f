"""Ali-CCP preparation: official raw layout written here, the processed real sample, errors, reruns."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.datasets.aliccp import KNOWN_FIELDS, field_name, prepare_processed, prepare_raw
from model.data import MultiDomainData
from model.datasets import load_data

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "aliccp"
# The real samples, where this checkout has them (../shared/data next to the repo, or shared/data in it).
_REPO = Path(__file__).resolve().parents[3]
_CANDIDATES = [d / "aliccp" for d in (_REPO.parent / "shared" / "data", _REPO / "shared" / "data")]
SHARED = next((d for d in _CANDIDATES if d.is_dir()), _CANDIDATES[0])
SKELETON_HEADER = "sample_id,click,purchase,common_feature_index,feature_num,feature_list"


def e(field, fid, value="1.0"):
    return f"{field}\x02{fid}\x03{value}"


def write_skeleton(path: Path, rows, header=False):
    """rows: (click, purchase, common_feature_index, [entries])."""
    lines = [SKELETON_HEADER] if header else []
    for i, (click, purchase, cfi, entries) in enumerate(rows):
        lines.append(f"{i + 1},{click},{purchase},{cfi},{len(entries)},{chr(1).join(entries)}")
    path.write_text("\n".join(lines) + "\n")


def write_common(path: Path, rows):
    path.write_text("\n".join(f"{cfi},{len(ents)},{chr(1).join(ents)}" for cfi, ents in rows) + "\n")


TRAIN = [
    (1, 0, "c1", [e(205, 501), e(301, 11)]),
    (0, 0, "c1", [e(205, 501), e(301, 11)]),
    (0, 1, "c2", [e(205, 502), e(301, 11)]),               # click 0 & purchase 1: dropped
    (1, 1, "c2", [e(205, 502), e(301, 12)]),
    (0, 0, "c2", [e(205, 503), e(301, 13)]),
    (0, 0, "cX", [e(205, 501), e(301, 12), e(210, 1), e(210, 2)]),  # no common row; 210 twice
    (0, 0, "c1", [e(205, 504)]),                           # no domain: dropped
]
TRAIN_COMMON = [("c1", [e(101, 1001), e(121, 5), e("109_14", 7001, "0.3"), e("109_14", 7002, "0.7")]),
                ("c2", [e(101, 1002), e(121, 6)])]
TEST = [(0, 0, "t1", [e(205, 501), e(301, 11)]), (1, 0, "t1", [e(205, 502), e(301, 11)]),
        (0, 0, "t1", [e(205, 501), e(301, 12)]), (0, 0, "t1", [e(205, 501), e(301, 12)]),
        (0, 0, "t1", [e(205, 503), e(301, 13)]), (1, 0, "t1", [e(205, 501), e(301, 13)]),
        (0, 0, "t1", [e(205, 501), e(301, 13)]),
        (0, 0, "t1", [e(205, 501), e(301, 14)]), (0, 0, "t1", [e(205, 501), e(301, 14)]),  # domain not in train
        (0, 1, "t1", [e(205, 501), e(301, 11)])]                                           # dropped by the rule
TEST_COMMON = [("t1", [e(101, 1001), e(121, 5)])]


def write_raw(directory: Path, header=False, train=TRAIN, test=TEST, train_common=TRAIN_COMMON) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_skeleton(directory / "sample_skeleton_train.csv", train, header)
    write_skeleton(directory / "sample_skeleton_test.csv", test, header)
    write_common(directory / "common_features_train.csv", train_common)
    write_common(directory / "common_features_test.csv", TEST_COMMON)
    return directory


def col(data: MultiDomainData, name: str) -> np.ndarray:
    return data.features[:, data.field_names.index(name)].numpy()


@pytest.mark.parametrize("header", [False, True])
def test_raw_layout_hand_counted(tmp_path, header):
    raw = write_raw(tmp_path / "raw", header=header)
    summary = prepare_raw(raw, tmp_path / "out", min_count=2)
    data = load_data(f"aliccp:{tmp_path / 'out'}")
    assert data.domain_names == ("S1", "S2", "S3")
    assert summary["domain_map"] == {"S1": {"field_301_id": 11}, "S2": {"field_301_id": 12}, "S3": {"field_301_id": 13}}
    assert summary["rows_in_input"] == {"train": 7, "test": 10}
    assert summary["dropped_rows"] == {"click0_purchase1": {"train": 1, "test": 1}, "no_domain": {"train": 1},
                                       "domain_not_kept": {"test": 2}}
    assert data.num_rows == 12
    split = data.split.numpy()
    train, evalr = split == 0, split > 0
    # Train: rows 1, 2, 4, 5, 6 of the file, in order; test rows 1-7 split 50/50 within each domain.
    assert data.labels[train].tolist() == [1, 0, 1, 0, 0] and data.labels[evalr].tolist() == [0, 1, 0, 0, 0, 1, 0]
    assert data.domains[train].tolist() == [0, 0, 1, 2, 1] and data.domains[evalr].tolist() == [0, 0, 1, 1, 2, 2, 2]
    per = {d: (v["train_rows"], v["val_rows"], v["test_rows"]) for d, v in summary["domains"].items()}
    assert per == {"S1": (2, 1, 1), "S2": (2, 1, 1), "S3": (1, 2, 1)}  # an odd domain's extra row goes to val first
    # Frequency filter (>= 2 train rows): 205 keeps 501 only; 101 keeps 1001, 1002; 121 keeps 5, 6.
    assert col(data, "item_id")[train].tolist() == [1, 1, 0, 0, 1]
    assert col(data, "item_id")[evalr].tolist() == [1, 0, 1, 1, 0, 1, 1]
    assert col(data, "user_id")[train].tolist() == [1, 1, 2, 2, 0]  # row 6 has no common row
    assert col(data, "f121")[train].tolist() == [1, 1, 2, 2, 0]
    assert col(data, "f109_14")[train].tolist() == [1, 1, 0, 0, 0]  # first of two ids: 7001
    assert col(data, "domain_id").tolist() == (data.domains.numpy() + 1).tolist()
    vocab = dict(zip(data.field_names, data.vocab_sizes))
    assert (vocab["user_id"], vocab["item_id"], vocab["domain_id"], vocab["f121"], vocab["f109_14"], vocab["f210"],
            vocab["f122"]) == (3, 2, 4, 3, 2, 1, 1)
    assert data.users[train].tolist() == [1001, 1001, 1002, 1002, -1]  # raw field-101 ids; -1 = none
    assert data.field_names == tuple(field_name(f) for f in KNOWN_FIELDS)
    assert summary["fields"]["f210"]["rows_with_several_ids"] == 1
    assert summary["fields"]["f109_14"]["rows_with_several_ids"] == 3  # train rows using c1 (before dropping)
    assert summary["inputs"]["sample_skeleton_train.csv"]["rows_without_common_features"] == 1
    assert summary["fields_used"] == list(KNOWN_FIELDS)


def test_raw_default_min_count_and_field_subset(tmp_path):
    raw = write_raw(tmp_path / "raw")
    summary = prepare_raw(raw, tmp_path / "out")  # min_count 10: every id is rare in this tiny input
    data = load_data(f"aliccp:{tmp_path / 'out'}")
    assert all(v == 1 for f, v in zip(data.field_names, data.vocab_sizes) if f != "domain_id")
    assert (col(data, "item_id") == 0).all() and summary["fields"]["item_id"]["distinct_in_train"] == 3
    summary = prepare_raw(raw, tmp_path / "out2", min_count=2, fields=("205", "301", "101"))
    data = load_data(f"aliccp:{tmp_path / 'out2'}")
    assert data.field_names == ("user_id", "item_id", "domain_id") and summary["fields_used"] == ["101", "205", "301"]
    assert any("121" in n for n in summary["notes"])  # entries of unused fields are reported as ignored
    with pytest.raises(ValueError, match="field 301 .* is required"):
        prepare_raw(raw, tmp_path / "o", fields=("205", "101"))
    with pytest.raises(ValueError, match=r"unknown AliCCP field\(s\) \['999'\]"):
        prepare_raw(raw, tmp_path / "o", fields=("301", "999"))


def test_raw_bad_inputs_name_file_line_column(tmp_path):
    out = tmp_path / "out"
    raw = write_raw(tmp_path / "raw")
    (raw / "common_features_test.csv").unlink()
    with pytest.raises(FileNotFoundError, match="common_features_test.csv' does not exist"):
        prepare_raw(raw, out)

    def broken(name, train=TRAIN, train_common=TRAIN_COMMON, header=False):
        return write_raw(tmp_path / name, header=header, train=train, train_common=train_common)

    rows = list(TRAIN)
    rows[2] = (0, 1, "c2", ["205\x02502", e(301, 11)])
    with pytest.raises(ValueError, match=r"sample_skeleton_train.csv, line 3, column 'feature_list', entry 1: "
                                         r"malformed feature-list entry"):
        prepare_raw(broken("b1", rows), out)
    with pytest.raises(ValueError, match=r"sample_skeleton_train.csv, line 4, column 'feature_list', entry 1"):
        prepare_raw(broken("b1h", rows, header=True), out)  # a header line shifts the line numbers
    rows = list(TRAIN)
    rows[1] = (0, 0, "c1", [e(205, 501), e(301, "abc")])
    with pytest.raises(ValueError, match=r"sample_skeleton_train.csv, line 2, column 'feature_list', entry 2: "
                                         r"non-numeric feature id 'abc'"):
        prepare_raw(broken("b2", rows), out)
    common = [("c1", [e(101, 1001)]), ("c2", [e(101, 1002), "121\x03x\x026"])]
    with pytest.raises(ValueError,
                       match=r"common_features_train.csv, line 2, column 'feature_list', entry 2: malformed"):
        prepare_raw(broken("b3", train_common=common), out)
    raw = broken("b4")
    lines = (raw / "sample_skeleton_train.csv").read_text().splitlines()
    lines[3] = "4,1,1,c2,2"
    (raw / "sample_skeleton_train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"sample_skeleton_train.csv, line 4: expected 6 columns .* got 5"):
        prepare_raw(raw, out)
    lines[3] = "4,x,1,c2,2," + chr(1).join([e(205, 502), e(301, 12)])
    (raw / "sample_skeleton_train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"sample_skeleton_train.csv, line 4, column 'click': non-numeric value"):
        prepare_raw(raw, out)
    lines[3] = "4,1,,c2,2," + chr(1).join([e(205, 502), e(301, 12)])
    (raw / "sample_skeleton_train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"sample_skeleton_train.csv, line 4, column 'purchase': empty value"):
        prepare_raw(raw, out)
    lines[3] = "4,3,1,c2,2," + chr(1).join([e(205, 502), e(301, 12)])
    (raw / "sample_skeleton_train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"sample_skeleton_train.csv, line 4, column 'click': must be 0 or 1, got 3"):
        prepare_raw(raw, out)
    assert not (out / "data.parquet").exists()


def test_raw_rerun_is_a_no_op_unless_forced(tmp_path):
    raw = write_raw(tmp_path / "raw")
    assert not prepare_raw(raw, tmp_path / "out", min_count=2)["skipped"]
    mtime = (tmp_path / "out" / "data.parquet").stat().st_mtime_ns
    assert prepare_raw(raw, tmp_path / "out", min_count=2)["skipped"]
    assert (tmp_path / "out" / "data.parquet").stat().st_mtime_ns == mtime
    assert not prepare_raw(raw, tmp_path / "out", min_count=2, force=True)["skipped"]
    assert not prepare_raw(raw, tmp_path / "out", min_count=3)["skipped"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["data.parquet", "summary.json"]


# ---- a pure-Python reference on generated raw data, read in many small blocks --------------------

def reference(raw: Path, min_count: int):
    """Straightforward per-line implementation of the documented rules."""
    def parse(text):
        out = {}
        for ent in text.split("\x01"):
            f, rest = ent.split("\x02")
            out.setdefault(f, int(rest.split("\x03")[0]))
        return out

    parts = {}
    for part in ("train", "test"):
        common = {}
        for line in (raw / f"common_features_{part}.csv").read_text().splitlines():
            cfi, _, fl = line.split(",", 2)
            common[cfi] = parse(fl)
        rows = []
        for line in (raw / f"sample_skeleton_{part}.csv").read_text().splitlines():
            _, click, purchase, cfi, _, fl = line.split(",", 5)
            if click == "0" and purchase == "1":
                continue
            ids = {**common.get(cfi, {}), **parse(fl)}
            if "301" in ids:
                rows.append((int(click), ids))
        parts[part] = rows
    counts = {f: {} for f in KNOWN_FIELDS}
    for _, ids in parts["train"]:
        for f, v in ids.items():
            if f in counts:
                counts[f][v] = counts[f].get(v, 0) + 1
    kept = {f: sorted(v for v, c in counts[f].items() if c >= min_count) for f in KNOWN_FIELDS}
    domains = sorted({ids["301"] for _, ids in parts["train"]})

    def encode(rows):
        feats = [[(domains.index(ids["301"]) + 1) if f == "301" else
                  (kept[f].index(ids[f]) + 1 if ids.get(f) in kept[f] else 0) for f in KNOWN_FIELDS]
                 for _, ids in rows if ids["301"] in domains]
        labels = [c for c, ids in rows if ids["301"] in domains]
        return np.array(feats), np.array(labels)

    vocab = tuple(len(domains) + 1 if f == "301" else len(kept[f]) + 1 for f in KNOWN_FIELDS)
    return encode(parts["train"]), encode(parts["test"]), vocab


def test_raw_matches_reference_on_generated_data(tmp_path):
    from benchmarks.aliccp_prepare import generate

    generate(tmp_path / "raw", rows=4000, seed=3, chunk=700)
    summary = prepare_raw(tmp_path / "raw", tmp_path / "out", min_count=3, block_size=1 << 16)
    data = load_data(f"aliccp:{tmp_path / 'out'}")
    (train_x, train_y), (test_x, test_y), vocab = reference(tmp_path / "raw", 3)
    split = data.split.numpy()
    assert np.array_equal(data.features.numpy()[split == 0], train_x)
    assert np.array_equal(data.labels.numpy()[split == 0], train_y)
    assert np.array_equal(data.features.numpy()[split > 0], test_x)
    assert np.array_equal(data.labels.numpy()[split > 0], test_y)
    assert data.domain_names == ("S1", "S2", "S3") and summary["rows"] == len(train_y) + len(test_y)
    assert data.vocab_sizes == vocab
    # The official test file splits evenly into validation and test within each domain (in each block
    # a domain's odd row goes to val, then test, alternately).
    doms = data.domains.numpy()
    for d in range(3):
        n_val, n_test = int(((split == 1) & (doms == d)).sum()), int(((split == 2) & (doms == d)).sum())
        assert 0 <= n_val - n_test <= 1


# ---- processed layout --------------------------------------------------------------------------

def _processed_expectations(src: Path, data: MultiDomainData, summary: dict):
    frames = {p: pd.read_csv(src / f"processed_{p}_sample.csv") for p in ("train", "val", "test")}
    full = pd.concat(frames.values(), ignore_index=True)
    assert data.num_rows == len(full) == 200
    assert data.domain_names == ("S1", "S2", "S3")
    for s, (p, df) in enumerate(frames.items()):
        counts = df["301"].value_counts().to_dict()
        for d, name in enumerate(data.domain_names):
            assert summary["domains"][name][f"{p}_rows"] == counts.get(d + 1, 0)
    assert np.bincount(data.split.numpy()).tolist() == [100, 50, 50]
    assert data.labels.tolist() == full["click"].astype(float).tolist()
    assert data.users.tolist() == full["101"].tolist()
    assert data.field_names == tuple(field_name(f) for f in KNOWN_FIELDS)
    for f in KNOWN_FIELDS:  # ids kept as given, vocabulary = max id + 1
        assert np.array_equal(col(data, field_name(f)), full[f].to_numpy()), f
        if f != "301":
            assert data.vocab_sizes[data.field_names.index(field_name(f))] == full[f].max() + 1, f
    assert summary["ignored_columns"] == ["D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853"]


def test_processed_fixture(tmp_path):
    summary = prepare_processed(FIXTURES, tmp_path / "out")
    _processed_expectations(FIXTURES, load_data(f"aliccp:{tmp_path / 'out'}"), summary)
    assert summary["mode"] == "processed"


@pytest.mark.skipif(not SHARED.exists(),
                    reason="shared/data/aliccp is absent (the shipped fixture copy is tested)")
def test_processed_shared_data(tmp_path):
    summary = prepare_processed(SHARED, tmp_path / "out")
    _processed_expectations(SHARED, load_data(f"aliccp:{tmp_path / 'out'}"), summary)


def _copy_processed(tmp_path: Path, name: str, edit=None, parts=("train", "val", "test")) -> Path:
    out = tmp_path / name
    out.mkdir()
    for p in parts:
        df = pd.read_csv(FIXTURES / f"processed_{p}_sample.csv", dtype=str)
        if edit is not None:
            df = edit(p, df)
        df.to_csv(out / f"processed_{p}_sample.csv", index=False)
    return out


def test_processed_field_subset_min_count_drop_rule_and_no_val(tmp_path):
    keep = ["click", "purchase", "101", "121", "205", "206", "301", "509"]
    src = _copy_processed(tmp_path, "subset", lambda p, df: df[keep])
    summary = prepare_processed(src, tmp_path / "o1")
    data = load_data(f"aliccp:{tmp_path / 'o1'}")
    assert data.field_names == ("user_id", "f121", "item_id", "f206", "f509", "domain_id")  # known-field order
    assert summary["fields_used"] == ["101", "121", "205", "206", "509", "301"]
    assert any("not used" in n and "210" in n for n in summary["notes"])

    # --min-count re-counts on train: ids with >= 2 train rows get 1..K in increasing order.
    summary = prepare_processed(src, tmp_path / "o2", min_count=2)
    data = load_data(f"aliccp:{tmp_path / 'o2'}")
    train = pd.read_csv(FIXTURES / "processed_train_sample.csv")
    full = pd.concat([pd.read_csv(FIXTURES / f"processed_{p}_sample.csv") for p in ("train", "val", "test")])
    counts = train["205"].value_counts()
    kept = sorted(counts[counts >= 2].index)
    assert data.vocab_sizes[data.field_names.index("item_id")] == len(kept) + 1
    expected = [kept.index(v) + 1 if v in kept else 0 for v in full["205"]]
    assert col(data, "item_id").tolist() == expected

    # Drop rule: a click 0 & purchase 1 row in val is dropped; without a val file the test file is split 50/50.
    def add_bad(p, df):
        if p == "val":
            df.loc[0, ["click", "purchase"]] = ["0", "1"]
        return df
    summary = prepare_processed(_copy_processed(tmp_path, "drop", add_bad), tmp_path / "o3")
    assert summary["dropped_rows"] == {"click0_purchase1": {"val": 1}} and summary["rows"] == 199
    summary = prepare_processed(_copy_processed(tmp_path, "noval", parts=("train", "test")), tmp_path / "o4")
    per = {d: (v["val_rows"], v["test_rows"]) for d, v in summary["domains"].items()}
    assert per == {"S1": (20, 19), "S2": (3, 3), "S3": (3, 2)}  # test file: 39 / 6 / 5 rows
    assert any("split 50/50" in n for n in summary["notes"])


def test_processed_bad_inputs(tmp_path):
    src = _copy_processed(tmp_path, "no301", lambda p, df: df.drop(columns=["301"]) if p == "test" else df)
    with pytest.raises(ValueError, match=r"processed_test_sample.csv, line 1: missing column '301'"):
        prepare_processed(src, tmp_path / "o")
    src = _copy_processed(tmp_path, "renamed", lambda p, df: df.rename(columns={"205": "item"}) if p == "val" else df)
    with pytest.raises(ValueError, match=r"processed_val_sample.csv, line 1: missing column '205'"):
        prepare_processed(src, tmp_path / "o")

    def bad_id(p, df):
        if p == "val":
            df.loc[6, "206"] = "x12"
        return df
    with pytest.raises(ValueError, match=r"processed_val_sample.csv, line 8, column '206': non-numeric value"):
        prepare_processed(_copy_processed(tmp_path, "badid", bad_id), tmp_path / "o")
    def empty_id(p, df):
        if p == "train":
            df.loc[9, "101"] = None
        return df
    with pytest.raises(ValueError, match=r"processed_train_sample.csv, line 11, column '101': empty value"):
        prepare_processed(_copy_processed(tmp_path, "emptyid", empty_id), tmp_path / "o")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no \*train\*.csv"):
        prepare_processed(empty, tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="processed directory .* does not exist"):
        prepare_processed(tmp_path / "nope", tmp_path / "o")


def test_training_runs_on_prepared_aliccp_sample(tmp_path):
    from model.config import RunConfig
    from model.train import train

    prepare_processed(FIXTURES, tmp_path / "out")
    data = load_data(f"aliccp:{tmp_path / 'out'}")
    config = RunConfig().with_overrides({"epochs": 1, "expert_hidden": (16, 8), "tower_hidden": (8,),
                                         "batch_size": 256, "aux_rows": 64})
    result = train(config, data)
    assert result.epochs_run == 1 and np.isfinite(result.metrics["test_logloss_overall"])
