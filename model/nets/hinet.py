"""HiNet (Zhou et al. 2023) for domains: the scenario extraction layer, then per-domain towers.

Letters: B rows, F fields, d embedding dim, S domains (the paper's scenarios), k sub-experts per
domain, m shared sub-experts, E = S*k + m, D sub-expert output width.

Scenario extraction layer, for a row of domain s:
  * shared:   G   = sum_j g_j(x) G_j over the m shared sub-experts (a subexpert integration module);
  * specific: S_t = sum_j g^t_j(x) S^t_j over domain t's k sub-experts, for every domain t;
  * SAN:      A   = sum_{t != s} w_t S_t, w = softmax over the other domains of a linear map of
              domain s's embedding (scenario-aware attentive network);
  * the tower of domain s reads [G, S_s, A].
HiNet's task extraction layer (CGC over tasks) is left out: there is one task, CTR.

Choices: sub-experts have the widths expert_hidden; all gates are Linear -> norm of the logits ->
softmax, as Crocodile's; the domain embedding is a table of its own (S rows, d columns).
With one sub-expert per module (shared_experts = specific_experts = 1, the defaults, so that HiNet has
as many experts as PLE and STEM) a module's gate is 1 and its parameters get no gradient.
ModelOutput.gates is each sub-expert's weight in [G, S_s, A], each part summing to 1, divided by 3.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.layers import BatchedGate, BatchedLinear, BatchedMLP, MultiEmbedding, PerDomainMLP, own_domain
from model.nets.output import ModelOutput


class HiNet(nn.Module):
    def __init__(self, *, embedding: MultiEmbedding, domain_embedding: MultiEmbedding, experts: BatchedMLP,
                 shared_gate: BatchedGate, specific_gates: BatchedGate, attention: BatchedLinear,
                 towers: PerDomainMLP, num_domains: int, specific: int, shared: int):
        super().__init__()
        self.embedding, self.domain_embedding, self.experts = embedding, domain_embedding, experts
        self.shared_gate, self.specific_gates, self.attention, self.towers = shared_gate, specific_gates, attention, towers
        self.num_domains, self.specific, self.shared = num_domains, specific, shared

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        s, k, m = self.num_domains, self.specific, self.shared
        x = self.embedding(features)  # (1, B, F*d)
        batch = x.shape[1]
        outputs = self.experts(x.expand(s * k + m, -1, -1))  # (E, B, D): domain 0's k, ..., domain S-1's k, shared m
        specific = outputs[:s * k].view(s, k, batch, -1)  # (S, k, B, D)
        shared_weights = self.shared_gate(x)[0]  # (B, m)
        shared = torch.einsum("bj,jbd->bd", shared_weights, outputs[s * k:])  # (B, D)
        specific_weights = self.specific_gates(x.expand(s, -1, -1))  # (S, B, k)
        per_domain = torch.einsum("tbj,tjbd->tbd", specific_weights, specific)  # (S, B, D)
        own = own_domain(per_domain, domains)  # (B, D)
        # SAN: attention over the other domains' specific representations.
        scores = self.attention(self.domain_embedding(domains.unsqueeze(1)))[0]  # (B, S)
        is_own = F.one_hot(domains, s).bool()  # (B, S)
        attention = scores.masked_fill(is_own, float("-inf")).softmax(dim=-1)  # (B, S), 0 on the own domain
        others = torch.einsum("bt,tbd->bd", attention, per_domain)  # (B, D)
        logits = self.towers(torch.cat([shared, own, others], dim=-1), domains).squeeze(-1)
        # Each sub-expert's weight in the row's representation: own domain 1, others their attention.
        part = torch.where(is_own, torch.ones_like(attention), attention)  # (B, S)
        specific_share = (part.unsqueeze(-1) * specific_weights.transpose(0, 1)).flatten(1)  # (B, S*k)
        gates = torch.cat([specific_share, shared_weights], dim=-1) / 3  # (B, E)
        return ModelOutput(logits, outputs, gates)


def build_hinet(*, vocab_sizes: tuple[int, ...], num_domains: int, embedding_dim: int, embedding_init_std: float,
                expert_hidden: tuple[int, ...], tower_hidden: tuple[int, ...], shared_experts: int,
                specific_experts: int, norm: str, dropout: float) -> HiNet:
    if num_domains < 2:
        raise ValueError(f"hinet attends over the other domains, so it needs at least 2 domains, got {num_domains}")
    in_dim, width = len(vocab_sizes) * embedding_dim, expert_hidden[-1]
    return HiNet(
        embedding=MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=1, dim=embedding_dim, init_std=embedding_init_std),
        domain_embedding=MultiEmbedding(vocab_sizes=(num_domains,), num_sets=1, dim=embedding_dim,
                                        init_std=embedding_init_std),
        experts=BatchedMLP(num_models=num_domains * specific_experts + shared_experts, in_dim=in_dim,
                           hidden=expert_hidden, norm=norm, dropout=dropout),
        shared_gate=BatchedGate(num_gates=1, in_dim=in_dim, num_experts=shared_experts, norm=norm),
        specific_gates=BatchedGate(num_gates=num_domains, in_dim=in_dim, num_experts=specific_experts, norm=norm),
        attention=BatchedLinear(num_models=1, in_dim=embedding_dim, out_dim=num_domains),
        towers=PerDomainMLP(num_domains=num_domains, in_dim=3 * width, hidden=tower_hidden, out_dim=1, norm=norm,
                            dropout=dropout),
        num_domains=num_domains, specific=specific_experts, shared=shared_experts,
    )
