"""KuaiRand-1K preparation: official raw layout written here, the merged real sample, errors, reruns."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from model.data import MultiDomainData
from model.datasets import load_data
from model.datasets.kuairand import prepare_merged, prepare_raw

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "kuairand"
# The real samples, where this checkout has them (../shared/data next to the repo, or shared/data in it).
_REPO = Path(__file__).resolve().parents[3]
_CANDIDATES = [d / "kuairand" for d in (_REPO.parent / "shared" / "data", _REPO / "shared" / "data")]
SHARED = next((d for d in _CANDIDATES if d.is_dir()), _CANDIDATES[0])
LOG_COLUMNS = ["user_id", "video_id", "date", "hourmin", "time_ms", "is_click", "is_like", "is_follow", "is_comment",
               "is_forward", "is_hate", "long_view", "play_time_ms", "duration_ms", "profile_stay_time",
               "comment_stay_time", "is_profile_enter", "is_rand", "tab"]


def log_row(user, video, click, tab, time_ms=0, duration_ms=30_000):
    return {"user_id": user, "video_id": video, "date": 20220408, "hourmin": 1200, "time_ms": time_ms,
            "is_click": click, "is_like": 0, "is_follow": 0, "is_comment": 0, "is_forward": 0, "is_hate": 0,
            "long_view": click, "play_time_ms": 5000 * click, "duration_ms": duration_ms, "profile_stay_time": 0,
            "comment_stay_time": 0, "is_profile_enter": 0, "is_rand": 0, "tab": tab}


def hand_rows():
    """28 rows in the 5 kept tabs, 3 in tabs 7 and 9 (dropped). Users 0, 1 and videos 1, 5 are frequent."""
    rows = [log_row(0, 1, int(i < 3), 1, time_ms=i) for i in range(12)]              # S1: 12 rows, 3 clicks
    rows += [log_row(1, 5, int(i < 2), 0, time_ms=100 + i) for i in range(6)]         # S0: 6 rows, 2 clicks
    rows += [log_row(100_000 + i, [2, 2, 30, 31][i], 1, 4) for i in range(4)]          # S4: video 2 twice (rare)
    rows += [log_row(100_010 + i, 40 + i, 0, 2) for i in range(3)]                     # S2
    rows += [log_row(100_020 + i, [50, 51, 999_999][i], i % 2, 6, duration_ms=500) for i in range(3)]  # S6
    rows += [log_row(0, 1, 0, 7), log_row(0, 1, 0, 7), log_row(0, 1, 1, 9)]           # tabs 7, 9
    return rows


def write_raw(directory: Path, rows, split_at=16) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    df = pd.DataFrame(rows, columns=LOG_COLUMNS)
    df.iloc[:split_at].to_csv(directory / "log_standard_4_08_to_4_21_1k.csv", index=False)
    df.iloc[split_at:].to_csv(directory / "log_standard_4_22_to_5_08_1k.csv", index=False)
    shutil.copy(FIXTURES / "user_features_pure_head.csv", directory / "user_features_1k.csv")
    shutil.copy(FIXTURES / "video_features_basic_pure_head.csv", directory / "video_features_basic_1k.csv")
    return directory


@pytest.fixture
def raw(tmp_path):
    return write_raw(tmp_path / "raw", hand_rows())


def col(data: MultiDomainData, name: str) -> np.ndarray:
    return data.features[:, data.field_names.index(name)].numpy()


def test_raw_layout_hand_counted(raw, tmp_path):
    summary = prepare_raw(raw, tmp_path / "out", min_count=3)
    data = load_data(f"kuairand1k:{tmp_path / 'out'}")
    # Domains: the 5 largest tabs, named S<tab>, ordered by tab; tabs 7 and 9 dropped.
    assert data.domain_names == ("S0", "S1", "S2", "S4", "S6")
    assert summary["domain_map"]["S4"] == {"tab": 4}
    assert summary["dropped_rows"] == {"tab 7": 2, "tab 9": 1}
    assert data.num_rows == 28 and summary["rows_in_input"] == 31
    per = {d: (e["train_rows"], e["val_rows"], e["test_rows"]) for d, e in summary["domains"].items()}
    assert per == {"S0": (4, 1, 1), "S1": (10, 1, 1), "S2": (1, 1, 1), "S4": (2, 1, 1), "S6": (1, 1, 1)}
    assert summary["domains"]["S1"]["click_rate"] == 0.25
    assert summary["domains"]["S0"]["click_rate"] == pytest.approx(1 / 3)
    # Rows keep file order (both log files, kept tabs only).
    tabs = [r["tab"] for r in hand_rows() if r["tab"] in (0, 1, 2, 4, 6)]
    assert [data.domain_names[d] for d in data.domains.tolist()] == [f"S{t}" for t in tabs]
    assert data.labels.tolist() == [float(r["is_click"]) for r in hand_rows() if r["tab"] in (0, 1, 2, 4, 6)]
    assert data.users.tolist() == [r["user_id"] for r in hand_rows() if r["tab"] in (0, 1, 2, 4, 6)]
    # Prior fields and domain_id = domain index + 1.
    assert data.field_names[:3] == ("user_id", "item_id", "domain_id")
    assert np.array_equal(col(data, "domain_id"), data.domains.numpy() + 1)
    assert data.vocab_sizes[2] == 6
    # Frequency filter (min_count 3 in train): users 0 and 1, videos 1 and 5 survive; video 2 (2 rows) does not.
    users, videos = data.users.numpy(), np.array([r["video_id"] for r in hand_rows() if r["tab"] in (0, 1, 2, 4, 6)])
    assert summary["fields"]["user_id"]["vocab"] == 3 and summary["fields"]["item_id"]["vocab"] == 3
    assert np.array_equal(col(data, "user_id"), np.select([users == 0, users == 1], [1, 2], 0))
    assert np.array_equal(col(data, "item_id"), np.select([videos == 1, videos == 5], [1, 2], 0))
    # User features: range strings are categories in sorted order; -124 is missing (id 0);
    # users absent from the feature file get 0 everywhere.
    rng = col(data, "follow_user_num_range")  # user 0: "500+", user 1: "(250,500]"
    assert data.vocab_sizes[data.field_names.index("follow_user_num_range")] == 3
    assert np.array_equal(rng, np.select([users == 1, users == 0], [1, 2], 0))
    streamer = col(data, "is_live_streamer")  # user 0: 1, user 1: -124
    assert np.array_equal(streamer, np.where(users == 0, 1, 0))
    assert summary["rows_without_user_features"] == 10 and summary["rows_without_video_features"] == 1
    video_like = ("duration", "author", "video", "upload", "visible", "server", "music", "tag")
    user_fields = [data.field_names.index(f) for f in data.field_names[3:] if not f.startswith(video_like)]
    assert len(user_fields) == 26 and (data.features[users >= 100_000][:, user_fields] == 0).all()
    # Raw counts are replaced by their *_range twins; outcomes are never features.
    assert "follow_user_num" not in data.field_names and "play_time_ms" not in data.field_names
    # Video features: tag is the first of a comma list ("20,43" -> "20" for video 5), distinct from video 1's "2".
    tag = col(data, "tag")
    assert (tag[videos == 1] != 0).all() and (tag[videos == 5] != 0).all()
    assert tag[videos == 1][0] != tag[videos == 5][0]
    assert summary["fields"]["tag"]["source"] == "tag (first tag)"
    # Duration bucket: 30 s -> 9, 0.5 s -> 0: two distinct non-zero ids where frequent enough.
    dur = col(data, "duration_ms")
    assert len(set(dur[videos == 1].tolist())) == 1 and dur[videos == 1][0] != 0
    assert all(v - 1 == info["vocab"] - 1 for v, info in zip(data.vocab_sizes, summary["fields"].values()))
    json.loads((tmp_path / "out" / "summary.json").read_text())  # strict JSON


def test_default_min_count_maps_rare_ids_to_zero(raw, tmp_path):
    summary = prepare_raw(raw, tmp_path / "out")  # min_count 10: only user 0 / video 1 (10 train rows) survive
    data = load_data(f"kuairand1k:{tmp_path / 'out'}")
    assert summary["fields"]["user_id"]["vocab"] == 2 and summary["fields"]["item_id"]["vocab"] == 2
    assert np.array_equal(col(data, "user_id"), (data.users.numpy() == 0).astype(int))
    # 18 train rows, 10 of them user 0's
    assert summary["fields"]["user_id"]["train_rows_at_id0"] == pytest.approx(8 / 18, abs=1e-6)


def test_time_split(tmp_path):
    rows = [log_row(i % 3, i % 4, i % 2, tab=i % 2, time_ms=1000 + i) for i in range(20)]
    write_raw(tmp_path / "raw", rows)
    summary = prepare_raw(tmp_path / "raw", tmp_path / "out", split="time", min_count=1)
    data = load_data(f"kuairand1k:{tmp_path / 'out'}")
    times = np.array([r["time_ms"] for r in rows])
    split = data.split.numpy()
    assert np.bincount(split).tolist() == [16, 2, 2]
    assert times[split == 0].max() < times[split == 1].min() <= times[split == 1].max() < times[split == 2].min()
    assert summary["options"]["split"] == "time"
    # A domain whose rows are all early cannot be split by time: a clear error, not a broken file.
    rows = [log_row(0, 0, 0, tab=0, time_ms=i) for i in range(5)]
    rows += [log_row(0, 0, 1, tab=1, time_ms=100 + i) for i in range(15)]
    write_raw(tmp_path / "raw2", rows)
    with pytest.raises(ValueError, match="--split time leaves domain 'S0' without val rows.*--split random"):
        prepare_raw(tmp_path / "raw2", tmp_path / "out2", split="time")
    assert not (tmp_path / "out2" / "data.parquet").exists()


def _merged_expectations(path: Path, data: MultiDomainData, summary: dict):
    df = pd.read_csv(path)
    assert data.num_rows == len(df) == 200
    assert data.domain_names == ("S1",)  # only tab 1 in the sample
    assert any("only 1 tab value" in n for n in summary["notes"])
    assert np.bincount(data.split.numpy()).tolist() == [160, 20, 20]
    assert data.labels.tolist() == df["is_click"].astype(float).tolist()
    assert data.users.tolist() == df["user_id"].tolist()
    assert data.field_names[:3] == ("user_id", "item_id", "domain_id")
    for leak in ("play_time_ms", "profile_stay_time", "comment_stay_time"):
        assert leak not in data.field_names
    # Frequency filter, recomputed independently: values with >= 10 train rows (missing -124 excluded) + id 0.
    train = df[data.split.numpy() == 0]
    for field, column in [("user_id", "user_id"), ("item_id", "video_id"),
                          ("fans_user_num_range", "fans_user_num_range"), ("onehot_feat3", "onehot_feat3"),
                          ("is_live_streamer", "is_live_streamer"), ("server_height", "server_height")]:
        counts = train[column][train[column] != -124].value_counts()
        expected = int((counts >= 10).sum()) + 1
        assert data.vocab_sizes[data.field_names.index(field)] == expected, field
        # A row gets a non-zero id exactly when its value is frequent.
        frequent = df[column].isin(counts[counts >= 10].index).to_numpy()
        assert np.array_equal(col(data, field) != 0, frequent), field


def test_merged_sample_fixture(tmp_path):
    summary = prepare_merged(FIXTURES / "log_merged_sample_1k.csv", tmp_path / "out")
    data = load_data(f"kuairand1k:{tmp_path / 'out'}")
    _merged_expectations(FIXTURES / "log_merged_sample_1k.csv", data, summary)


@pytest.mark.skipif(not SHARED.exists(),
                    reason="shared/data/kuairand is absent (the shipped fixture copy is tested)")
def test_merged_sample_shared_data(tmp_path):
    path = SHARED / "log_merged_sample_1k.csv"
    summary = prepare_merged(path, tmp_path / "out")
    _merged_expectations(path, load_data(f"kuairand1k:{tmp_path / 'out'}"), summary)


@pytest.mark.skipif(not SHARED.exists(), reason="shared/data/kuairand is absent (fixture heads are tested)")
def test_raw_layout_with_full_pure_feature_files(tmp_path):
    raw = write_raw(tmp_path / "raw", hand_rows())
    shutil.copy(SHARED / "user_features_pure.csv", raw / "user_features_1k.csv")
    shutil.copy(SHARED / "video_features_basic_pure.csv", raw / "video_features_basic_1k.csv")
    summary = prepare_raw(raw, tmp_path / "out", min_count=3)
    assert summary["rows"] == 28 and summary["rows_without_user_features"] == 10
    load_data(f"kuairand1k:{tmp_path / 'out'}")


def _edit(path: Path, old: str, new: str, count: int = 1):
    path.write_text(path.read_text().replace(old, new, count))


def test_bad_inputs_name_file_line_and_column(raw, tmp_path):
    out = tmp_path / "out"
    first = raw / "log_standard_4_08_to_4_21_1k.csv"
    lines = first.read_text().splitlines()

    bad = tmp_path / "b1"
    shutil.copytree(raw, bad)
    (bad / "user_features_1k.csv").unlink()
    with pytest.raises(FileNotFoundError,
                       match="user features: no file .* matches user_features_1k.csv or user_features"):
        prepare_raw(bad, out)

    bad = tmp_path / "b2"
    shutil.copytree(raw, bad)
    _edit(bad / first.name, "is_click", "click")
    with pytest.raises(ValueError, match=r"log_standard_4_08_to_4_21_1k.csv, line 1: missing column 'is_click'"):
        prepare_raw(bad, out)

    bad = tmp_path / "b3"
    shutil.copytree(raw, bad)
    (bad / first.name).write_text("\n".join(lines[:3] + ["0,v9" + lines[3][3:]] + lines[4:]) + "\n")
    with pytest.raises(ValueError, match=r"log_standard_4_08_to_4_21_1k.csv, line 4, column 'video_id': non-numeric"):
        prepare_raw(bad, out)

    bad = tmp_path / "b4"
    shutil.copytree(raw, bad)
    second = bad / "log_standard_4_22_to_5_08_1k.csv"
    rows = second.read_text().splitlines()
    parts = rows[2].split(",")
    parts[LOG_COLUMNS.index("is_click")] = "2"
    second.write_text("\n".join(rows[:2] + [",".join(parts)] + rows[3:]) + "\n")
    with pytest.raises(ValueError, match=r"log_standard_4_22_to_5_08_1k.csv, line 3, column 'is_click': "
                                         r"label must be 0 or 1, got 2"):
        prepare_raw(bad, out)

    bad = tmp_path / "b5"
    shutil.copytree(raw, bad)
    (bad / first.name).write_text("\n".join(lines[:5] + ["0,1,2"] + lines[5:]) + "\n")
    with pytest.raises(ValueError, match=r"log_standard_4_08_to_4_21_1k.csv, line 6: expected 19 columns .* got 3"):
        prepare_raw(bad, out)

    bad = tmp_path / "b6"
    shutil.copytree(raw, bad)
    _edit(bad / "user_features_1k.csv", "onehot_feat3,", "onehot_feat_3,")
    with pytest.raises(ValueError, match=r"user_features_1k.csv, line 1: missing column 'onehot_feat3'"):
        prepare_raw(bad, out)

    bad = tmp_path / "b7"
    shutil.copytree(raw, bad)
    ulines = (bad / "user_features_1k.csv").read_text().splitlines()
    (bad / "user_features_1k.csv").write_text("\n".join(ulines + [ulines[3]]) + "\n")
    with pytest.raises(ValueError, match=r"user_features_1k.csv, line 42, column 'user_id': duplicate id 2"):
        prepare_raw(bad, out)

    bad = tmp_path / "b8"
    bad.mkdir()
    shutil.copy(FIXTURES / "log_merged_sample_1k.csv", bad)
    with pytest.raises(FileNotFoundError, match="no log_standard_.*use --merged FILE"):
        prepare_raw(bad, out)
    with pytest.raises(FileNotFoundError, match="merged log .* does not exist"):
        prepare_merged(bad / "nope.csv", out)
    with pytest.raises(FileNotFoundError, match="raw directory .* does not exist"):
        prepare_raw(tmp_path / "nope", out)
    assert not out.exists() or not (out / "data.parquet").exists()


def test_rerun_is_a_no_op_unless_inputs_options_or_force_change(raw, tmp_path):
    out = tmp_path / "out"
    s1 = prepare_raw(raw, out, min_count=3)
    mtime = (out / "data.parquet").stat().st_mtime_ns
    s2 = prepare_raw(raw, out, min_count=3)
    assert s2["skipped"] and not s1["skipped"] and (out / "data.parquet").stat().st_mtime_ns == mtime
    assert not prepare_raw(raw, out, min_count=3, force=True)["skipped"]
    assert not prepare_raw(raw, out, min_count=3, seed=1)["skipped"]  # options are part of the fingerprint
    assert prepare_raw(raw, out, min_count=3, seed=1)["skipped"]
    log = raw / "log_standard_4_22_to_5_08_1k.csv"
    os.utime(log, ns=(log.stat().st_atime_ns, log.stat().st_mtime_ns + 10**9))
    assert not prepare_raw(raw, out, min_count=3, seed=1)["skipped"]
    assert sorted(p.name for p in out.iterdir()) == ["data.parquet", "summary.json"]


def test_training_runs_on_prepared_sample(tmp_path):
    from model.config import RunConfig
    from model.train import train

    prepare_merged(FIXTURES / "log_merged_sample_1k.csv", tmp_path / "out")
    data = load_data(f"kuairand1k:{tmp_path / 'out'}")
    config = RunConfig().with_overrides({"epochs": 1, "expert_hidden": (16, 8), "tower_hidden": (8,),
                                         "batch_size": 256, "aux_rows": 64})
    result = train(config, data)
    assert result.epochs_run == 1 and np.isfinite(result.metrics["test_logloss_overall"])


def test_empty_id_and_bad_option(raw, tmp_path):
    second = raw / "log_standard_4_22_to_5_08_1k.csv"
    rows = second.read_text().splitlines()
    rows[4] = "," + rows[4].split(",", 1)[1]  # empty user_id on line 5
    second.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"log_standard_4_22_to_5_08_1k.csv, line 5, column 'user_id': empty value"):
        prepare_raw(raw, tmp_path / "out")
    with pytest.raises(ValueError, match="--split must be 'random' or 'time'"):
        prepare_merged(FIXTURES / "log_merged_sample_1k.csv", tmp_path / "out", split="by-user")
