"""Single Domain: one independent DNN per domain, each trained only on its own domain's rows.

Letters: B rows, F fields, d embedding dim, S domains.

The S models live in one module with static shapes: S embedding sets (set s is domain s's table)
and one per-domain MLP (PerDomainMLP: every domain's layers run on every row, each row keeps its
own). A row reaches only its own domain's parameters, and batch statistics are per domain, so the
loss of domain s has an exactly zero gradient on every other domain's parameters: training them
together is training them apart. Choices the paper leaves open: each DNN has the hidden widths
expert_hidden + tower_hidden; the one coupling left is the joint early stopping on the monitor.
The domains' scores come from different models, so only per-domain metrics are meaningful (the
paper's tables show "-" for overall).
"""
from __future__ import annotations

import torch
from torch import nn

from model.layers import MultiEmbedding, PerDomainMLP, own_domain
from model.nets.output import ModelOutput


class SingleDomain(nn.Module):
    def __init__(self, *, embedding: MultiEmbedding, networks: PerDomainMLP):
        super().__init__()
        self.embedding, self.networks = embedding, networks

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        own = own_domain(self.embedding(features), domains)  # (B, F*d): row b looks up its domain's table
        return ModelOutput(self.networks(own, domains).squeeze(-1), None, None)


def build_single_domain(*, vocab_sizes: tuple[int, ...], num_domains: int, embedding_dim: int,
                        embedding_init_std: float, hidden: tuple[int, ...], norm: str, dropout: float) -> SingleDomain:
    return SingleDomain(
        embedding=MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=num_domains, dim=embedding_dim,
                                 init_std=embedding_init_std),
        networks=PerDomainMLP(num_domains=num_domains, in_dim=len(vocab_sizes) * embedding_dim, hidden=hidden,
                              out_dim=1, norm=norm, dropout=dropout),
    )
