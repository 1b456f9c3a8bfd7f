import itertools
import math

import numpy as np
import pytest
import torch

from model.metrics import auc, evaluate, gauc, grouped_auc


def brute_auc(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    if not pos or not neg:
        return math.nan
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def brute_gauc(scores, labels, groups):
    num = den = 0.0
    for g in set(groups):
        idx = [i for i, x in enumerate(groups) if x == g]
        a = brute_auc([scores[i] for i in idx], [labels[i] for i in idx])
        if not math.isnan(a):
            num += len(idx) * a
            den += len(idx)
    return num / den if den else math.nan


def test_auc_hand_checked():
    # pairs (pos, neg): (0.9,0.1) win, (0.9,0.5) win, (0.5,0.1) win, (0.5,0.5) tie -> 3.5 / 4
    assert auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert auc([0.1, 0.2], [1, 0]) == 0.0
    assert math.isnan(auc([0.1, 0.2], [1, 1]))


@pytest.mark.parametrize("seed", range(20))
def test_auc_and_gauc_match_brute_force_on_tie_heavy_inputs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    scores = rng.integers(-3, 4, n).astype(np.float32) / 2  # few distinct values: many ties, negatives, zero
    labels = rng.integers(0, 2, n)
    groups = rng.integers(0, 6, n)
    assert auc(scores, labels) == pytest.approx(brute_auc(scores, labels), nan_ok=True)
    assert gauc(scores, labels, groups) == pytest.approx(brute_gauc(list(scores), list(labels), list(groups)), nan_ok=True)


def test_negative_zero_ties_with_positive_zero():
    assert auc(torch.tensor([-0.0, 0.0]), torch.tensor([1, 0])) == 0.5


def test_auc_accepts_torch_and_numpy_and_extreme_values():
    scores = torch.tensor([-1e30, -1.0, -1e-30, 0.0, 1e-30, 3.0, 1e30])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1])
    assert auc(scores, labels) == 1.0
    assert auc(scores.numpy(), labels.numpy()) == 1.0


def test_grouped_auc_flags_groups_without_both_labels():
    per_group, impressions, defined = grouped_auc([0.1, 0.2, 0.3, 0.4], [0, 1, 1, 1], [5, 5, 7, 7])
    assert defined.tolist() == [True, False]
    assert impressions.tolist() == [2, 2]
    assert per_group[0].item() == 1.0 and math.isnan(per_group[1].item())


def test_bad_inputs():
    with pytest.raises(ValueError, match="equal length"):
        auc([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="NaN"):
        auc([float("nan"), 0.2], [1, 0])
    with pytest.raises(ValueError, match="empty"):
        auc([], [])


def test_evaluate_names_and_per_domain_grouping():
    scores = torch.tensor([0.9, 0.1, 0.8, 0.2, 0.3, 0.7])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.0])
    domains = torch.tensor([0, 0, 1, 1, 1, 1])
    users = torch.tensor([0, 0, 0, 0, 1, 1])
    out = evaluate("val", scores, labels, domains, users, ("A", "B"))
    assert out["val_auc_A"] == 1.0
    assert out["val_auc_B"] == 0.0
    # overall gAUC groups by user across domains; per domain by (domain, user)
    assert out["val_gauc_overall"] == pytest.approx(brute_gauc(scores.tolist(), labels.tolist(), users.tolist()))
    assert out["val_gauc_B"] == 0.0
    assert set(out) == {f"val_{m}_{d}" for m in ("auc", "gauc", "logloss") for d in ("A", "B", "overall")}
