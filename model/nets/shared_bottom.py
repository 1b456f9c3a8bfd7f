"""Shared Bottom (Caruana 1997) for domains: a shared embedding and bottom MLP, one tower per domain.

Letters: B rows, F fields, d embedding dim, H bottom output width, S domains.
The bottom has the widths expert_hidden (one "expert" that every domain reads), the towers
tower_hidden, so its capacity compares with one expert of the MoE methods.
"""
from __future__ import annotations

import torch
from torch import nn

from model.layers import BatchedMLP, MultiEmbedding, PerDomainMLP
from model.nets.output import ModelOutput


class SharedBottom(nn.Module):
    def __init__(self, *, embedding: MultiEmbedding, bottom: BatchedMLP, towers: PerDomainMLP):
        super().__init__()
        self.embedding, self.bottom, self.towers = embedding, bottom, towers

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        shared = self.bottom(self.embedding(features))[0]  # (B, H), the same for every domain
        return ModelOutput(self.towers(shared, domains).squeeze(-1), None, None)


def build_shared_bottom(*, vocab_sizes: tuple[int, ...], num_domains: int, embedding_dim: int,
                        embedding_init_std: float, expert_hidden: tuple[int, ...], tower_hidden: tuple[int, ...],
                        norm: str, dropout: float) -> SharedBottom:
    return SharedBottom(
        embedding=MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=1, dim=embedding_dim, init_std=embedding_init_std),
        bottom=BatchedMLP(num_models=1, in_dim=len(vocab_sizes) * embedding_dim, hidden=expert_hidden, norm=norm,
                          dropout=dropout),
        towers=PerDomainMLP(num_domains=num_domains, in_dim=expert_hidden[-1], hidden=tower_hidden, out_dim=1,
                            norm=norm, dropout=dropout),
    )
