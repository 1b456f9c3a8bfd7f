"""python -m sweeper.power: seeds needed per primary hypothesis from a pilot, and the simulated power table."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sweeper import power, stats

REPO = Path(__file__).resolve().parents[2]


def test_seeds_from_a_pilot_sweep(make_sweep, capsys):
    sweep_dir = make_sweep("rows")
    table = power.sweep_seeds_table(sweep_dir, lift=0.001)
    assert table["hypothesis"].tolist() == ["H1 auc", "H1 gauc"]
    assert set(table["alpha"]) == {0.025} and set(table["n"]) == {5}
    for row in table.itertuples():
        assert row.seeds_needed == stats.seeds_needed(0.001, row.sd_diff, 0.025)
        assert row.seeds_if_unpaired == stats.seeds_needed(0.001, math.hypot(row.std, row.ref_std), 0.025)
        # conftest's seed effect is shared by both arms: pairing removes it and needs fewer seeds
        assert row.pair_corr > 0.5 and row.seeds_needed < row.seeds_if_unpaired
    assert power.main([str(sweep_dir), "--lift", "0.001"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Seeds needed for 80 % power at a true lift of 0.001 (0.10 pts), per primary hypothesis:")
    assert "H1 auc: Crocodile vs MMoE, overall auc: " in out and "two-sided at alpha 0.025; pilot n = 5" in out


def test_errors_name_the_problem(make_sweep, tmp_path, capsys):
    sweep_dir = make_sweep("rows")
    spec = json.loads((sweep_dir / "sweep.json").read_text())
    (sweep_dir / "sweep.json").write_text(json.dumps({**spec, "hypotheses": []}))
    assert power.main([str(sweep_dir)]) == 2
    assert "declares no hypotheses" in capsys.readouterr().err
    assert power.main([str(tmp_path / "nowhere")]) == 2
    assert "sweep.json does not exist" in capsys.readouterr().err
    assert power.main([str(sweep_dir), "--lift", "0"]) == 2
    assert "--lift must be > 0 (metric units, 0.001 = 0.1 pts), but got --lift=0.0" in capsys.readouterr().err
    assert power.main(["--simulate", "--reps", "10"]) == 2
    with pytest.raises(SystemExit):
        power.main([])


def test_power_table_matches_the_issue_numbers_in_shape():
    table = power.power_table(ns=(6,), lifts=(0.0, 2.0), rhos=(0.0,), reps=4_000)
    assert list(table.columns) == ["pair corr", "seeds", "0 SD", "2 SD"]
    assert table["0 SD"][0] < 0.03 and table["2 SD"][0] > 0.6


def test_smoke_test_entry_point():
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-m", "sweeper.power", "--smoke-test"], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "H1 auc: Crocodile vs MMoE, overall auc:" in done.stdout and "2 SD" in done.stdout


def test_smoke_pilot_is_table5_shaped():
    runs, declared = power.smoke_pilot()
    assert isinstance(runs, pd.DataFrame) and runs["variant"].nunique() == 6 and runs["seed"].nunique() == 3
    assert declared[0].variant == "Crocodile"
