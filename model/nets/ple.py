"""PLE (Tang et al. 2020) for domains: levels of customised gate control (CGC), per-domain towers.

Letters: B rows, F fields, d embedding dim, S domains, k specific experts per domain, m shared
experts, E = S*k + m experts per level, D a level's output width.

A level keeps S+1 representations of every row: one per domain and a shared one. Domain t's k
experts read representation t, the m shared experts read the shared one; domain t's gate mixes
its own k experts and the m shared ones (Tang eq. 2-4); the shared gate, on every level but the
last, mixes all E. Every domain's path runs on every row (static shapes, no host sync): a row's
prediction uses its own domain's path, and the other paths feed the shared one, as in PLE.

Choices the paper leaves open or our comparison needs:
  * Depth: the widths expert_hidden are split over the levels in order (ple_levels=2 and
    expert_hidden=(128, 64): level 1's experts have one hidden layer of 128, level 2's of 64), so
    PLE's experts are as deep as the other methods' experts.
  * Gates: Linear -> norm of the logits -> softmax, as Crocodile's gates.
  * ME-PLE (embedding=ME): S+1 embedding sets as in STEM, set t for domain t's experts and set S
    for the shared ones; level 1's gate of domain t reads set t + set S (STEM's gate input), so
    ME-PLE and STEM differ only in what their gates mix.
"""
from __future__ import annotations

import torch
from torch import nn

from model.layers import BatchedGate, BatchedMLP, MultiEmbedding, PerDomainMLP, grouped_inputs, own_domain
from model.nets.output import ModelOutput


def split_widths(widths: tuple[int, ...], parts: int) -> list[tuple[int, ...]]:
    """widths cut into `parts` consecutive runs, the first ones one longer when it does not divide."""
    if not 1 <= parts <= len(widths):
        raise ValueError(f"cannot split {len(widths)} widths {widths} over {parts} levels")
    size, extra = divmod(len(widths), parts)
    runs, start = [], 0
    for i in range(parts):
        end = start + size + (i < extra)
        runs.append(tuple(widths[start:end]))
        start = end
    return runs


class ExtractionLevel(nn.Module):
    """One CGC level: the experts' inputs and the gates' inputs -> the experts' outputs and the
    S (+1 shared) mixtures."""

    def __init__(self, *, num_domains: int, specific: int, shared: int, in_dim: int, hidden: tuple[int, ...],
                 norm: str, dropout: float, last: bool):
        super().__init__()
        s, k, m = num_domains, specific, shared
        self.experts = BatchedMLP(num_models=s * k + m, in_dim=in_dim, hidden=hidden, norm=norm, dropout=dropout)
        self.domain_gates = BatchedGate(num_gates=s, in_dim=in_dim, num_experts=k + m, norm=norm)
        self.shared_gate = None if last else BatchedGate(num_gates=1, in_dim=in_dim, num_experts=s * k + m,
                                                         norm=norm)
        # place[t, j, e] = 1 when gate t's j-th weight belongs to expert e (its own k, then the m shared):
        # mixing through this 0/1 matrix instead of indexing keeps the backward deterministic.
        place = torch.zeros(s, k + m, s * k + m)
        for t in range(s):
            for j in range(k):
                place[t, j, t * k + j] = 1.0
            for j in range(m):
                place[t, k + j, s * k + j] = 1.0
        self.register_buffer("place", place, persistent=False)

    def forward(self, expert_in: torch.Tensor, domain_gate_in: torch.Tensor, shared_gate_in: torch.Tensor):
        """expert_in (E, B, in), domain_gate_in (S, B, in), shared_gate_in (1, B, in) -> outputs (E, B, D),
        domain mixtures (S, B, D), the shared mixture (1, B, D) or None on the last level, and the
        domain gates' weights on all experts (S, B, E)."""
        outputs = self.experts(expert_in)  # (E, B, D)
        own = self.domain_gates(domain_gate_in)  # (S, B, k+m)
        weights = torch.einsum("tbj,tje->tbe", own, self.place)  # (S, B, E), 0 outside a gate's experts
        mixed = torch.einsum("tbe,ebd->tbd", weights, outputs)  # (S, B, D)
        shared = None
        if self.shared_gate is not None:
            everything = self.shared_gate(shared_gate_in)  # (1, B, E)
            shared = torch.einsum("gbe,ebd->gbd", everything, outputs)  # (1, B, D)
        return outputs, mixed, shared, weights


class PLE(nn.Module):
    def __init__(self, *, embedding: MultiEmbedding, levels: nn.ModuleList, towers: PerDomainMLP, num_domains: int,
                 specific: int, shared: int):
        super().__init__()
        self.embedding, self.levels, self.towers = embedding, levels, towers
        self.num_domains, self.specific, self.shared = num_domains, specific, shared

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        s, k, m = self.num_domains, self.specific, self.shared
        embedded = self.embedding(features)  # (1, B, F*d) under SE, (S+1, B, F*d) under ME (set S shared)
        if embedded.shape[0] == 1:
            expert_in, domain_gate_in = embedded.expand(s * k + m, -1, -1), embedded.expand(s, -1, -1)
            shared_gate_in = embedded
        else:
            domain_sets, shared_gate_in = embedded[:s], embedded[s:]  # (S, B, F*d), (1, B, F*d)
            expert_in = grouped_inputs(domain_sets, shared_gate_in, k, m)  # (E, B, F*d)
            domain_gate_in = domain_sets + shared_gate_in  # own set + shared set
        for level in self.levels:
            outputs, mixed, shared, weights = level(expert_in, domain_gate_in, shared_gate_in)
            if shared is not None:
                expert_in = grouped_inputs(mixed, shared, k, m)  # (E, B, D)
                domain_gate_in, shared_gate_in = mixed, shared
        own = own_domain(mixed, domains)  # (B, D)
        return ModelOutput(self.towers(own, domains).squeeze(-1), outputs, own_domain(weights, domains))


def build_ple(*, vocab_sizes: tuple[int, ...], num_domains: int, embedding: str, embedding_dim: int,
              embedding_init_std: float, expert_hidden: tuple[int, ...], tower_hidden: tuple[int, ...],
              shared_experts: int, specific_experts: int, num_levels: int, norm: str, dropout: float) -> PLE:
    widths = split_widths(expert_hidden, num_levels)
    in_dims = [len(vocab_sizes) * embedding_dim] + [w[-1] for w in widths[:-1]]
    levels = nn.ModuleList(
        ExtractionLevel(num_domains=num_domains, specific=specific_experts, shared=shared_experts, in_dim=in_dim,
                        hidden=hidden, norm=norm, dropout=dropout, last=i == num_levels - 1)
        for i, (in_dim, hidden) in enumerate(zip(in_dims, widths)))
    return PLE(
        embedding=MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=num_domains + 1 if embedding == "ME" else 1,
                                 dim=embedding_dim, init_std=embedding_init_std),
        levels=levels,
        towers=PerDomainMLP(num_domains=num_domains, in_dim=expert_hidden[-1], hidden=tower_hidden, out_dim=1,
                            norm=norm, dropout=dropout),
        num_domains=num_domains, specific=specific_experts, shared=shared_experts,
    )
