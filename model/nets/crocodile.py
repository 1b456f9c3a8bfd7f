"""The Crocodile family (paper Sec. 4): SE/ME embeddings, M expert MLPs, four gatings, per-domain towers.

Letters: B rows, F fields, d embedding dim, M experts (= embedding sets under ME), D expert output
dim, S domains, P prior fields (user id, item id, domain id), Dg gate width (1, or D element-wise).

Variants by name (the paper's Tables 4-6):
  SE + standard + none  = MMoE          ME + standard = ME-MMoE (M >= S: gate s reads set s)
  ME + pg               = ME-MMoE-PG    ME + peg + cov = Crocodile
architecture=mmoe is this module with standard gating only (model/architectures.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.layers import BatchedMLP, MultiEmbedding, PerDomainMLP, own_domain
from model.nets.output import ModelOutput


@dataclass(frozen=True)
class Gating:
    """prior: the gate reads the separate prior embedding instead of the sample's embeddings.
    elementwise: one softmax over experts per output dimension instead of one per expert."""

    prior: bool
    elementwise: bool


GATINGS = {
    "standard": Gating(prior=False, elementwise=False),  # MMoE
    "pg": Gating(prior=True, elementwise=False),
    "eg": Gating(prior=False, elementwise=True),
    "peg": Gating(prior=True, elementwise=True),  # Crocodile
}
# SE: one embedding set feeds every expert. ME: set p feeds expert p.
EMBEDDINGS = ("SE", "ME")


class Crocodile(nn.Module):
    """Experts mixed per domain by a gate, then the domain's tower.

    gate_reads: "prior" (PG/PEG: the prior embedding), "shared" (SE: the one embedding set) or
    "own_set" (ME with standard/EG gating: domain s's gate reads embedding set s, paper Sec. 4.4).
    """

    def __init__(self, *, embedding: MultiEmbedding, prior_embedding: MultiEmbedding | None,
                 prior_fields: tuple[int, ...], experts: BatchedMLP, gates: PerDomainMLP, towers: PerDomainMLP,
                 num_experts: int, gate_width: int, gate_reads: str):
        super().__init__()
        self.embedding, self.prior_embedding, self.experts = embedding, prior_embedding, experts
        self.gates, self.towers = gates, towers
        self.num_experts, self.gate_width, self.gate_reads = num_experts, gate_width, gate_reads
        self.register_buffer("prior_fields", torch.tensor(prior_fields, dtype=torch.int64), persistent=False)

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        batch = features.shape[0]
        embedded = self.embedding(features)  # (1 or M, B, F*d)
        outputs = self.experts(embedded.expand(self.num_experts, -1, -1))  # (M, B, D); SE: all read set 0
        if self.gate_reads == "prior":
            gate_in = self.prior_embedding(features.index_select(1, self.prior_fields))[0]  # (B, P*d)
        elif self.gate_reads == "own_set":
            gate_in = own_domain(embedded[:self.gates.num_domains], domains)  # (B, F*d): gate s reads set s
        else:
            gate_in = embedded[0]  # (B, F*d)
        logits = self.gates(gate_in, domains)  # (B, M*Dg), each row its own domain's gate
        gates = logits.view(batch, self.num_experts, self.gate_width).softmax(dim=1)  # (B, M, Dg)
        mixed = (gates * outputs.transpose(0, 1)).sum(dim=1)  # (B, D)
        return ModelOutput(self.towers(mixed, domains).squeeze(-1), outputs, gates.mean(dim=-1))


def build_crocodile(*, vocab_sizes: tuple[int, ...], num_domains: int, prior_fields: tuple[int, ...],
                    embedding: str, num_embeddings: int, embedding_dim: int, embedding_init_std: float,
                    expert_hidden: tuple[int, ...], tower_hidden: tuple[int, ...], gating: str, norm: str,
                    dropout: float) -> Crocodile:
    """Assemble a Crocodile from its parts. prior_fields: column indices of user/item/domain id."""
    kind = GATINGS[gating]
    num_experts, dim = num_embeddings, embedding_dim
    if embedding == "ME" and not kind.prior and num_experts < num_domains:
        raise ValueError(f"embedding=ME with gating={gating!r} reads embedding set s in domain s's gate, so "
                         f"num_embeddings must be >= the {num_domains} domains, but got num_embeddings={num_experts}; "
                         f"use gating=pg or gating=peg to untie M from the domains")
    table = MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=num_experts if embedding == "ME" else 1, dim=dim,
                           init_std=embedding_init_std)
    prior_embedding = None
    gate_in, gate_reads = len(vocab_sizes) * dim, "own_set" if embedding == "ME" else "shared"
    if kind.prior:
        # Domain-independent and separate from the experts' tables (paper Sec. 4.4).
        prior_embedding = MultiEmbedding(vocab_sizes=tuple(vocab_sizes[i] for i in prior_fields), num_sets=1,
                                         dim=dim, init_std=embedding_init_std)
        gate_in, gate_reads = len(prior_fields) * dim, "prior"
    expert_dim = expert_hidden[-1]
    gate_width = expert_dim if kind.elementwise else 1
    return Crocodile(
        embedding=table,
        prior_embedding=prior_embedding,
        prior_fields=prior_fields,
        experts=BatchedMLP(num_models=num_experts, in_dim=len(vocab_sizes) * dim, hidden=expert_hidden, norm=norm,
                           dropout=dropout),
        gates=PerDomainMLP(num_domains=num_domains, in_dim=gate_in, hidden=(), out_dim=num_experts * gate_width,
                           norm=norm, norm_output=True),
        towers=PerDomainMLP(num_domains=num_domains, in_dim=expert_dim, hidden=tower_hidden, out_dim=1, norm=norm,
                            dropout=dropout),
        num_experts=num_experts,
        gate_width=gate_width,
        gate_reads=gate_reads,
    )
