"""Round 1's Crocodile forward, kept only as the benchmark's "before": rows grouped by domain.

Each domain's gate and tower ran on its own rows: argsort by domain, bincount(...).tolist() (a host
sync per step) and a Python loop over the domains. Today's model (model/nets/crocodile.py) runs
every per-domain module on every row with static shapes instead. Same parameter shapes and maths,
no normalisation, so the throughput ratio isolates the per-domain layer.

Letters: B rows, M experts, D expert output dim, Dg gate width.
"""
from __future__ import annotations

import torch
from torch import nn

from model.layers import BatchedMLP, MultiEmbedding
from model.nets.crocodile import GATINGS
from model.nets.output import ModelOutput


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


class GroupedCrocodile(nn.Module):
    def __init__(self, *, vocab_sizes, num_domains, prior_fields, num_embeddings, embedding_dim, expert_hidden,
                 tower_hidden, gating):
        super().__init__()
        kind, dim, m = GATINGS[gating], embedding_dim, num_embeddings
        self.embedding = MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=m, dim=dim)
        self.prior_embedding = MultiEmbedding(vocab_sizes=tuple(vocab_sizes[i] for i in prior_fields), num_sets=1,
                                              dim=dim) if kind.prior else None
        self.register_buffer("prior_fields", torch.tensor(prior_fields, dtype=torch.int64), persistent=False)
        self.experts = BatchedMLP(num_models=m, in_dim=len(vocab_sizes) * dim, hidden=expert_hidden)
        gate_in = (len(prior_fields) if kind.prior else len(vocab_sizes)) * dim
        self.gate_width = expert_hidden[-1] if kind.elementwise else 1
        self.num_experts = m
        self.gates = nn.ModuleList(nn.Linear(gate_in, m * self.gate_width) for _ in range(num_domains))
        self.towers = nn.ModuleList(_mlp(expert_hidden[-1], tower_hidden, 1) for _ in range(num_domains))

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        batch = features.shape[0]
        embedded = self.embedding(features)  # (M, B, F*d)
        outputs = self.experts(embedded)  # (M, B, D)
        gate_in = (self.prior_embedding(features.index_select(1, self.prior_fields))[0]
                   if self.prior_embedding is not None else embedded[0])
        order = torch.argsort(domains, stable=True)
        counts = torch.bincount(domains, minlength=len(self.towers)).tolist()  # host sync
        by_row, gate_in = outputs.transpose(0, 1)[order], gate_in[order]  # (B, M, D) domain-sorted
        logits, gates, start = [], [], 0
        for s, n in enumerate(counts):
            if n == 0:
                continue
            rows = slice(start, start + n)
            start += n
            g = self.gates[s](gate_in[rows]).view(n, self.num_experts, self.gate_width).softmax(dim=1)  # (n, M, Dg)
            logits.append(self.towers[s]((g * by_row[rows]).sum(dim=1)).squeeze(-1))
            gates.append(g.mean(dim=-1))
        inverse = torch.empty_like(order).scatter_(0, order, torch.arange(batch, device=order.device))
        return ModelOutput(torch.cat(logits)[inverse], outputs, torch.cat(gates)[inverse])
