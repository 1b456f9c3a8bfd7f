"""Sec. 5.6's 32 vs 1024 rows CovLoss experiment (model/covloss_sampling.py)."""
import json

import numpy as np
import pytest
import scipy.stats
import torch

from model.config import RunConfig
from model.covloss_sampling import (SMOKE_OVERRIDES, compare_norms, covloss_norms, main, track_covloss_norms)
from model.losses import cov_loss


def test_covloss_norms_use_the_first_rows():
    outputs = torch.randn(3, 40, 4, generator=torch.Generator().manual_seed(0))
    got = covloss_norms(outputs, (8, 40))
    assert got[8] == pytest.approx(float(cov_loss(outputs[:, :8])))
    assert got[40] == pytest.approx(float(cov_loss(outputs)))
    # Two experts with identical columns: cov = var per dim on the diagonal; by hand for 2 rows
    # (0, 2) and (0, 2): centred (-1, 1), cross-cov entry = (1 + 1) / 2 = 1 per (dim, dim) pair.
    same = torch.tensor([[0.0, 0.0], [2.0, 2.0]]).expand(2, 2, 2)  # (M=2, B=2, D=2)
    assert covloss_norms(same, (2,))[2] == pytest.approx(4 / 4)  # sum |1| over 2x2 entries / D^2
    with pytest.raises(ValueError, match="rows 50 exceed the batch's 40 rows"):
        covloss_norms(outputs, (50,))


def test_compare_norms_against_scipy():
    rng = np.random.default_rng(0)
    large = rng.normal(1.0, 0.1, 60)
    noisy = large + rng.normal(0, 0.05, 60)  # no systematic difference
    biased = large * 1.3 + rng.normal(0, 0.05, 60)  # 30 % larger on average
    same = compare_norms(list(noisy), list(large))
    assert same.t_p == pytest.approx(scipy.stats.ttest_rel(noisy, large).pvalue)
    assert same.wilcoxon_p == pytest.approx(scipy.stats.wilcoxon(noisy, large).pvalue)
    assert same.same and "holds here" in same.verdict()
    differ = compare_norms(list(biased), list(large))
    assert not differ.same and differ.ratio == pytest.approx(biased.mean() / large.mean())
    assert differ.t_p < 1e-10 and "does not hold" in differ.verdict()
    assert compare_norms([1.0, 2.0], [1.0, 2.0]).same
    assert not compare_norms([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]).same  # a constant difference
    with pytest.raises(ValueError, match="two equal-length series"):
        compare_norms([1.0], [1.0])


def test_track_follows_training_and_checks_rows(tiny):
    config = RunConfig().with_overrides({**SMOKE_OVERRIDES, "num_embeddings": 2})
    trace = track_covloss_norms(config, tiny, rows=(32, 1024))
    n_train = int((tiny.split == 0).sum())
    assert len(trace.steps) == n_train // 1024  # every full batch, not the last partial one
    assert all(len(v) == len(trace.steps) and all(x >= 0 for x in v) for v in trace.norms.values())
    with pytest.raises(ValueError, match="exceed batch_size=1024"):
        track_covloss_norms(config, tiny, rows=(32, 2048))


def test_smoke_run_prints_a_verdict(capsys, tmp_path):
    # --json writes what the report's claims section reads (sweeper.paper_claims.read_covloss).
    result = main(["--smoke-test", "num_embeddings=2", "--json", str(tmp_path / "sweep" / "covloss_sampling.json")])
    out = capsys.readouterr().out
    assert "32 rows" in out and "1024 rows" in out and "Wilcoxon p" in out and result.verdict() in out
    assert result.n >= 10
    record = json.loads((tmp_path / "sweep" / "covloss_sampling.json").read_text())
    assert record["rows"] == [32, 1024] and record["n"] == result.n and record["same"] == result.same
    assert record["t_p"] == result.t_p and record["data"] == "synthetic:tiny"
