"""STEM-Net (Su et al. 2023) for domains: shared and domain-specific embeddings, experts on each,
and the "all forward, task-specific backward" gate.

Letters: B rows, F fields, d embedding dim, S domains, k specific experts per domain, m shared
experts, E = S*k + m, D expert output width.

Embedding sets 0..S-1 are domain-specific, set S is shared. Domain t's k experts read set t, the
m shared experts read set S. The gate of domain s reads set s + set S (as in the authors' code)
and mixes all E experts, but the other domains' experts enter the mixture through a stop-gradient:
their outputs are used forward, and domain s's loss never trains them nor their embedding sets.

Choices: one STEM layer (the authors' default num_layers=1) with experts of widths expert_hidden;
gates are Linear -> norm of the logits -> softmax, as Crocodile's; embedding=ME only (the layout
above is what STEM is).
"""
from __future__ import annotations

import torch
from torch import nn

from model.layers import BatchedMLP, MultiEmbedding, PerDomainMLP, grouped_inputs, own_domain
from model.nets.output import ModelOutput


class STEM(nn.Module):
    def __init__(self, *, embedding: MultiEmbedding, experts: BatchedMLP, gates: PerDomainMLP, towers: PerDomainMLP,
                 num_domains: int, specific: int, shared: int):
        super().__init__()
        self.embedding, self.experts, self.gates, self.towers = embedding, experts, gates, towers
        self.num_domains, self.specific, self.shared = num_domains, specific, shared
        owner = [t for t in range(num_domains) for _ in range(specific)] + [num_domains] * shared
        # Expert e belongs to domain owner[e] (S: shared) and reads its embedding set.
        self.register_buffer("owner", torch.tensor(owner), persistent=False)

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        s = self.num_domains
        embedded = self.embedding(features)  # (S+1, B, F*d)
        outputs = self.experts(grouped_inputs(embedded[:s], embedded[s:], self.specific, self.shared))  # (E, B, D)
        gate_in = own_domain(embedded[:s], domains) + embedded[s]  # (B, F*d): own set + shared set
        gates = self.gates(gate_in, domains).softmax(dim=-1)  # (B, E)
        # All forward, task-specific backward: a row's gradient reaches only its own domain's and
        # the shared experts; torch.where's backward is element-wise (no scatter).
        trained = (self.owner == domains.unsqueeze(1)) | (self.owner == s)  # (B, E)
        rows = outputs.transpose(0, 1)  # (B, E, D)
        rows = torch.where(trained.unsqueeze(-1), rows, rows.detach())
        mixed = (gates.unsqueeze(-1) * rows).sum(dim=1)  # (B, D)
        return ModelOutput(self.towers(mixed, domains).squeeze(-1), outputs, gates)


def build_stem(*, vocab_sizes: tuple[int, ...], num_domains: int, embedding_dim: int, embedding_init_std: float,
               expert_hidden: tuple[int, ...], tower_hidden: tuple[int, ...], shared_experts: int,
               specific_experts: int, norm: str, dropout: float) -> STEM:
    num_experts = num_domains * specific_experts + shared_experts
    in_dim = len(vocab_sizes) * embedding_dim
    return STEM(
        embedding=MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=num_domains + 1, dim=embedding_dim,
                                 init_std=embedding_init_std),
        experts=BatchedMLP(num_models=num_experts, in_dim=in_dim, hidden=expert_hidden, norm=norm, dropout=dropout),
        gates=PerDomainMLP(num_domains=num_domains, in_dim=in_dim, hidden=(), out_dim=num_experts, norm=norm,
                           norm_output=True),
        towers=PerDomainMLP(num_domains=num_domains, in_dim=expert_hidden[-1], hidden=tower_hidden, out_dim=1,
                            norm=norm, dropout=dropout),
        num_domains=num_domains, specific=specific_experts, shared=shared_experts,
    )
