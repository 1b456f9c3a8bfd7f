"""AdaSparse (Yang et al. 2022), scaling form: domain-adaptive neuron weighting with a sparsity
regulariser, then per-domain towers.

Letters: B rows, F fields, d embedding dim, S domains, H a layer's input width, L layers.

Before every layer l of the backbone (the embedding input included), a pruner weights the
layer's input neurons h_l: v = W_l [e_d, sg(h_l)], pi = BETA * sigmoid(v), pi set to 0 where
pi < EPSILON, h_l <- pi * h_l. e_d is the domain's embedding and sg the stop-gradient: the pruner
reads the layer input without training it.

Sparsity regulariser (our form; the paper states the goal, a controlled sparsity ratio, and the
binarised form's; we read no public code of it): r_l = the fraction of zero factors of layer l
in the batch, and the penalty sparsity_weight * sum_l 1[r_l < sparsity_target] * mean(pi_l) / BETA,
an L1 pull towards zero that switches off once a layer reaches the target ratio. It is returned
as ModelOutput.penalty and added to the loss by the training loop.

Choices: BETA = 2 and EPSILON = 0.1 (module constants); only the scaling form (the paper's
binarisation and fusion forms are not offered); the backbone has the widths expert_hidden and
feeds per-domain towers (tower_hidden) that are not pruned; e_d comes from a table of its own.
"""
from __future__ import annotations

import torch
from torch import nn

from model.layers import BatchedLinear, BatchedMLP, MultiEmbedding, PerDomainMLP
from model.nets.output import ModelOutput

BETA = 2.0  # the factors' range (0, BETA)
EPSILON = 0.1  # factors below it are zero: the neuron is pruned for this row


class Pruner(nn.Module):
    """[e_d (B, d), h (B, H)] -> weighting factors (B, H), computed from the stop-gradient of h."""

    def __init__(self, *, domain_dim: int, width: int):
        super().__init__()
        self.linear = BatchedLinear(num_models=1, in_dim=domain_dim + width, out_dim=width)

    def forward(self, domain: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        v = self.linear(torch.cat([domain, h.detach()], dim=-1).unsqueeze(0))[0]  # (B, H)
        pi = BETA * torch.sigmoid(v)
        return torch.where(pi < EPSILON, torch.zeros_like(pi), pi)


class AdaSparse(nn.Module):
    def __init__(self, *, embedding: MultiEmbedding, domain_embedding: MultiEmbedding, pruners: nn.ModuleList,
                 layers: nn.ModuleList, towers: PerDomainMLP, sparsity_target: float, sparsity_weight: float):
        super().__init__()
        self.embedding, self.domain_embedding, self.pruners, self.layers = embedding, domain_embedding, pruners, layers
        self.towers, self.sparsity_target, self.sparsity_weight = towers, sparsity_target, sparsity_weight

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        h = self.embedding(features)[0]  # (B, F*d)
        domain = self.domain_embedding(domains.unsqueeze(1))[0]  # (B, d)
        penalty = h.new_zeros(())
        for pruner, layer in zip(self.pruners, self.layers):
            pi = pruner(domain, h)  # (B, H)
            sparsity = (pi == 0).float().mean()  # r_l, no host sync
            penalty = penalty + (sparsity < self.sparsity_target).float() * pi.mean() / BETA
            h = layer((pi * h).unsqueeze(0))[0]  # (B, H')
        return ModelOutput(self.towers(h, domains).squeeze(-1), None, None, self.sparsity_weight * penalty)


def build_adasparse(*, vocab_sizes: tuple[int, ...], num_domains: int, embedding_dim: int, embedding_init_std: float,
                    expert_hidden: tuple[int, ...], tower_hidden: tuple[int, ...], sparsity_target: float,
                    sparsity_weight: float, norm: str, dropout: float) -> AdaSparse:
    widths = (len(vocab_sizes) * embedding_dim,) + expert_hidden
    return AdaSparse(
        embedding=MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=1, dim=embedding_dim, init_std=embedding_init_std),
        domain_embedding=MultiEmbedding(vocab_sizes=(num_domains,), num_sets=1, dim=embedding_dim,
                                        init_std=embedding_init_std),
        pruners=nn.ModuleList(Pruner(domain_dim=embedding_dim, width=w) for w in widths[:-1]),
        layers=nn.ModuleList(BatchedMLP(num_models=1, in_dim=a, hidden=(b,), norm=norm, dropout=dropout)
                             for a, b in zip(widths[:-1], widths[1:])),
        towers=PerDomainMLP(num_domains=num_domains, in_dim=expert_hidden[-1], hidden=tower_hidden, out_dim=1,
                            norm=norm, dropout=dropout),
        sparsity_target=sparsity_target, sparsity_weight=sparsity_weight,
    )
