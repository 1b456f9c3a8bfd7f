"""Exact AUC and gAUC in torch, one sort each, on CPU or GPU.

Both come from one grouped Mann-Whitney computation: rows are sorted once by the int64 key
(group << 32 | order-preserving bits of the float32 score), so ties (equal scores in one group)
sit next to each other and get their average rank, i.e. count 1/2.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _as_tensor(x) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _monotone_bits(scores: torch.Tensor) -> torch.Tensor:
    """int64 in [0, 2^32) that orders like the float32 scores (equal floats give equal values)."""
    s = scores.detach().to(torch.float32) + 0.0  # -0.0 + 0.0 == +0.0, so both zeros tie
    if torch.isnan(s).any():
        raise ValueError("scores contain NaN")
    bits = s.view(torch.int32).to(torch.int64)
    # Negative floats order backwards in their bit pattern: flip them; shift positives above them.
    return torch.where(bits < 0, (2**31 - 1) - (bits & 0x7FFFFFFF), bits + 2**31)


def grouped_auc(scores, labels, groups) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-group exact AUC.

    scores (N,), labels (N,) in {0,1}, groups (N,) int ids in [0, 2^31). Returns (auc (G,) float64,
    impressions (G,) int64, defined (G,) bool) over the G distinct groups in ascending id order;
    auc is NaN where a group lacks either label.
    """
    scores, labels, groups = _as_tensor(scores), _as_tensor(labels), _as_tensor(groups).to(torch.int64)
    if not (scores.shape == labels.shape == groups.shape) or scores.dim() != 1:
        raise ValueError(
            f"scores, labels and groups must be 1-D of equal length, got {tuple(scores.shape)}, "
            f"{tuple(labels.shape)}, {tuple(groups.shape)}"
        )
    if scores.numel() == 0:
        raise ValueError("cannot compute AUC of an empty set")
    groups = groups.to(scores.device)
    key = (groups << 32) | _monotone_bits(scores)
    key_sorted, order = torch.sort(key)
    lab = labels.to(scores.device)[order].to(torch.float64)
    # Tie runs: equal keys (same group, same score) get the average of their 1-based global ranks.
    _, run_of, run_len = torch.unique_consecutive(key_sorted, return_inverse=True, return_counts=True)
    run_start = torch.cumsum(run_len, 0) - run_len
    avg_rank = (run_start.to(torch.float64) + (run_len.to(torch.float64) + 1) / 2)[run_of]
    _, group_of, group_len = torch.unique_consecutive(groups[order], return_inverse=True, return_counts=True)
    group_start = torch.cumsum(group_len, 0) - group_len
    local_rank = avg_rank - group_start.to(torch.float64)[group_of]  # rank within the group, 1-based
    num_groups = group_len.shape[0]
    n_pos = torch.zeros(num_groups, dtype=torch.float64, device=lab.device).index_add_(0, group_of, lab)
    rank_sum_pos = torch.zeros_like(n_pos).index_add_(0, group_of, lab * local_rank)
    n_neg = group_len.to(torch.float64) - n_pos
    defined = (n_pos > 0) & (n_neg > 0)
    u = rank_sum_pos - n_pos * (n_pos + 1) / 2
    auc_per_group = torch.where(defined, u / (n_pos * n_neg).clamp_min(1), torch.full_like(u, float("nan")))
    return auc_per_group, group_len, defined


def auc(scores, labels) -> float:
    """Exact ROC AUC with ties counted 1/2; NaN when only one label is present."""
    scores = _as_tensor(scores)
    per_group, _, _ = grouped_auc(scores, labels, torch.zeros(scores.shape, dtype=torch.int64, device=scores.device))
    return float(per_group[0])


def gauc(scores, labels, groups) -> float:
    """Impression-weighted mean of per-group AUC over groups with both labels (NaN if none)."""
    per_group, impressions, defined = grouped_auc(scores, labels, groups)
    weight = impressions.to(torch.float64) * defined
    total = float(weight.sum())
    if total == 0:
        return math.nan
    return float((torch.nan_to_num(per_group) * weight).sum() / total)


def logloss(scores_logit, labels) -> float:
    return float(F.binary_cross_entropy_with_logits(
        _as_tensor(scores_logit).double(), _as_tensor(labels).double().to(_as_tensor(scores_logit).device)))


def evaluate(split_name: str, logits: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor,
             users: torch.Tensor, domain_names: tuple[str, ...],
             truth: torch.Tensor | None = None) -> dict[str, float]:
    """All metrics of one split as `{split}_{metric}_{domain}` (domain `overall` pools all rows).

    Metrics: auc, gauc (per user; per domain by (domain, user)), logloss, and when the planted
    click probability `truth` is known, bayesauc/bayesgauc: what the true probabilities score.
    """
    out: dict[str, float] = {}
    scorers = [("", logits)] + ([("bayes", truth)] if truth is not None else [])
    for prefix, scores in scorers:
        out[f"{split_name}_{prefix}auc_overall"] = auc(scores, labels)
        out[f"{split_name}_{prefix}gauc_overall"] = gauc(scores, labels, users)
        for d, dom in enumerate(domain_names):
            mask = domains == d
            out[f"{split_name}_{prefix}auc_{dom}"] = auc(scores[mask], labels[mask])
            out[f"{split_name}_{prefix}gauc_{dom}"] = gauc(scores[mask], labels[mask], users[mask])
    out[f"{split_name}_logloss_overall"] = logloss(logits, labels)
    for d, dom in enumerate(domain_names):
        mask = domains == d
        out[f"{split_name}_logloss_{dom}"] = logloss(logits[mask], labels[mask])
    return out
