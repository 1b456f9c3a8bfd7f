"""Task loss (paper eq. 7) and the disentangling auxiliary losses of Table 4.

Letters: M experts, B rows, D expert output dim, S domains. Auxiliary losses are pure functions
of the stacked expert outputs (M, B, D) (importance: of the gates (B, M)); all are differentiable.
Definitions the paper leaves open are stated in each docstring (see shared/paper/NOTES.md).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def per_domain_bce(logits: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor, num_domains: int) -> torch.Tensor:
    """Per-domain mean BCE summed over domains (the paper's eq. 7): each domain weighs the same,
    whatever its share of the rows. (B,) each; domains absent from the batch contribute 0. Counts
    come from index_add, not bincount: bincount sizes its output from the data (a host sync on
    CUDA) and has no vmap rule (seed-batched training)."""
    bce = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), reduction="none")  # (B,)
    sums = torch.zeros(num_domains, dtype=bce.dtype, device=bce.device).index_add(0, domains, bce)  # (S,)
    counts = torch.zeros(num_domains, dtype=bce.dtype, device=bce.device).index_add(0, domains, torch.ones_like(bce))
    return (sums / counts.clamp_min(1)).sum()


def global_bce(logits: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor, num_domains: int) -> torch.Tensor:
    """One mean BCE over the batch: each row weighs the same (what multi-domain libraries train with)."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


# task_loss=NAME (TrainConfig). per_domain is the paper's; global is the field's usual loss, which
# trained MMoE to 0.834 test AUC instead of 0.816 on synthetic-v1:small (README: "Training defaults").
TASK_LOSSES = {"per_domain": per_domain_bce, "global": global_bce}


def task_loss(logits: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor, num_domains: int,
              kind: str = "per_domain") -> torch.Tensor:
    """The task loss named by kind (TASK_LOSSES) of logits, labels, domains (B,) each."""
    return TASK_LOSSES[kind](at_least_float32(logits), labels, domains, num_domains)


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 activations (autocast) are lifted to float32 for the losses; float64 stays float64."""
    return x if x.dtype == torch.float64 else x.float()


def _pairs(num_experts: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Index vectors (P,) of all expert pairs p > q, P = M(M-1)/2."""
    p, q = torch.tril_indices(num_experts, num_experts, offset=-1, device=device)
    return p, q


def cov_loss(outputs: torch.Tensor) -> torch.Tensor:
    """CovLoss (eq. 6): (1/D^2) sum_{p>q} || (O_p - mean O_p)^T (O_q - mean O_q) / B ||_1.

    outputs (M, B, D). We divide the cross-covariance by B (the paper writes no 1/B) so that alpha
    does not depend on the batch size or on how many rows the loss is computed on.
    """
    num_experts, batch, dim = outputs.shape
    if num_experts < 2:
        return outputs.new_zeros(())
    centred = outputs - outputs.mean(dim=1, keepdim=True)  # (M, B, D)
    p, q = _pairs(num_experts, outputs.device)
    cross = torch.bmm(centred[p].transpose(1, 2), centred[q]) / batch  # (P, D, D)
    return cross.abs().sum() / dim**2


def dot_loss(outputs: torch.Tensor) -> torch.Tensor:
    """sum_{p>q} | mean_k <O_k^p, O_k^q> |. outputs (M, B, D)."""
    if outputs.shape[0] < 2:
        return outputs.new_zeros(())
    p, q = _pairs(outputs.shape[0], outputs.device)
    return (outputs[p] * outputs[q]).sum(-1).mean(-1).abs().sum()


def cos_loss(outputs: torch.Tensor) -> torch.Tensor:
    """sum_{p>q} | mean_k cos(O_k^p, O_k^q) |. outputs (M, B, D); zero rows count as cos 0."""
    if outputs.shape[0] < 2:
        return outputs.new_zeros(())
    p, q = _pairs(outputs.shape[0], outputs.device)
    cos = F.cosine_similarity(outputs[p], outputs[q], dim=-1, eps=1e-8)  # (P, B)
    return cos.mean(-1).abs().sum()


def _double_centred_distances(x: torch.Tensor) -> torch.Tensor:
    """x (M, B, D) -> double-centred Euclidean distance matrices (M, B, B)."""
    sq = (x.unsqueeze(2) - x.unsqueeze(1)).pow(2).sum(-1)  # (M, B, B)
    dist = torch.sqrt(sq + 1e-12)  # eps keeps the gradient finite at zero distance
    return dist - dist.mean(1, keepdim=True) - dist.mean(2, keepdim=True) + dist.mean((1, 2), keepdim=True)


def dcorr_loss(outputs: torch.Tensor) -> torch.Tensor:
    """sum_{p>q} distance correlation dCor(O^p, O^q) over the batch (Szekely 2007).

    dCor = sqrt(dCov^2(p,q) / sqrt(dVar^2(p) dVar^2(q))). Memory M B^2: use a row subset.
    """
    if outputs.shape[0] < 2:
        return outputs.new_zeros(())
    a = _double_centred_distances(outputs)  # (M, B, B)
    p, q = _pairs(outputs.shape[0], outputs.device)
    dcov2 = (a[p] * a[q]).mean((1, 2))  # (P,)
    dvar2 = (a * a).mean((1, 2))  # (M,)
    return torch.sqrt((dcov2 / torch.sqrt(dvar2[p] * dvar2[q]).clamp_min(1e-12)).clamp_min(1e-12)).sum()


def ole_loss(outputs: torch.Tensor) -> torch.Tensor:
    """Frobenius-norm form of OLE (Lezama 2018) between experts (our definition; not public).

    Each expert's output dimensions are L2-normalised over the batch (columns of O_p), and the
    squared Frobenius norm of their cross products is pushed to 0, i.e. the experts' column spaces
    are made orthogonal: (1/D^2) sum_{p>q} || N_p^T N_q ||_F^2. outputs (M, B, D).
    """
    num_experts, _, dim = outputs.shape
    if num_experts < 2:
        return outputs.new_zeros(())
    cols = F.normalize(outputs, dim=1, eps=1e-8)  # (M, B, D), unit columns
    p, q = _pairs(num_experts, outputs.device)
    cross = torch.bmm(cols[p].transpose(1, 2), cols[q])  # (P, D, D)
    return cross.pow(2).sum() / dim**2


def importance_loss(gates: torch.Tensor) -> torch.Tensor:
    """Shazeer et al. 2017: CV(importance)^2, importance_p = sum_k g_kp. gates (B, M)."""
    importance = gates.sum(0)  # (M,)
    if importance.numel() < 2:
        return gates.new_zeros(())
    return importance.var(unbiased=False) / importance.mean().pow(2).clamp_min(1e-12)


def no_loss(outputs: torch.Tensor) -> torch.Tensor:
    return outputs.new_zeros(())


# Losses of expert outputs (M, B, D). `importance` takes the gates instead: see AUX_ON_GATES.
AUX_LOSSES = {
    "none": no_loss,
    "cov": cov_loss,
    "dot": dot_loss,
    "cos": cos_loss,
    "dcorr": dcorr_loss,
    "ole": ole_loss,
    "importance": importance_loss,
}
AUX_ON_GATES = frozenset({"importance"})


def aux_loss(name: str, outputs: torch.Tensor, gates: torch.Tensor, num_rows: int) -> torch.Tensor:
    """The named auxiliary loss on the first num_rows rows (0 = all).

    outputs (M, B, D), gates (B, M). Batches are already a uniform random sample of the data, so
    their first rows are a uniform random subset: no extra sampling is needed (the paper: 32 rows
    suffice for CovLoss).
    """
    if name not in AUX_LOSSES:
        raise ValueError(f"unknown aux_loss {name!r}; valid: {sorted(AUX_LOSSES)}")
    if num_rows > 0:
        outputs, gates = outputs[:, :num_rows], gates[:num_rows]
    return AUX_LOSSES[name](gates if name in AUX_ON_GATES else at_least_float32(outputs))
