"""`python -m model.datasets prepare ...` (model/datasets/cli.py, __main__.py)."""
import os
import subprocess
import sys
from pathlib import Path

from model.datasets.cli import main
from model.datasets.prepare import PREPARE_VERSION

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MERGED = FIXTURES / "kuairand" / "log_merged_sample_1k.csv"
REPO = Path(__file__).resolve().parents[3]


def test_cli_prints_summary_and_reports_errors(tmp_path, capsys):
    main(["prepare", "kuairand1k", "--merged", str(MERGED), "--out", str(tmp_path / "k")])
    out = capsys.readouterr().out
    assert "kuairand1k (merged): 200 rows" in out and "S1" in out and "summary.json" in out
    main(["prepare", "kuairand1k", "--merged", str(MERGED), "--out", str(tmp_path / "k")])
    assert "[up to date, not rebuilt]" in capsys.readouterr().out
    assert PREPARE_VERSION >= 1
    # As a module: a bad input is one clear line on stderr and exit status 2, no traceback.
    proc = subprocess.run([sys.executable, "-m", "model.datasets", "prepare", "aliccp", "--raw",
                           str(tmp_path / "missing"), "--out", str(tmp_path / "a")],
                          capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: AliCCP raw directory") and "Traceback" not in proc.stderr
