"""STAR (Sheng et al. 2021): the star-topology FCN, partitioned normalisation, auxiliary network.

Letters: B rows, F fields, d embedding dim, S domains.

  * Star topology: every layer of domain s has the weight W_shared * W_s (element-wise) and the
    bias b_shared + b_s (eq. 3): StarLinear, all domains as one GEMM.
  * Partitioned normalisation (PN, eq. 2): batch statistics of each domain's own rows, scale
    gamma * gamma_s and shift beta + beta_s: DomainNorm(shared_affine=True). It normalises the
    embedding and takes the place of the norm after every hidden layer; `norm` picks its kind
    (batch, as the paper; layer; none turns PN off, which is no longer the paper's STAR).
  * Auxiliary network: [domain embedding, feature embedding] -> an MLP of widths tower_hidden
    -> 1, added to the star FCN's logit (eq. 5): sigmoid(s_main + s_aux).

Choices: the star FCN has the widths expert_hidden + tower_hidden and ends in a star layer to 1 (so
the per-domain towers are its top layers); StarLinear's init gives every domain the shared
layer at the start (W_s = 1, b_s = 0); the domain embedding is a table of its own (S rows, d columns).
"""
from __future__ import annotations

import torch
from torch import nn

from model.layers import BatchedMLP, DomainNorm, MultiEmbedding, StarLinear
from model.nets.output import ModelOutput


class STAR(nn.Module):
    def __init__(self, *, embedding: MultiEmbedding, domain_embedding: MultiEmbedding, input_norm: nn.Module | None,
                 layers: nn.ModuleList, norms: nn.ModuleList | None, out: StarLinear, auxiliary: BatchedMLP,
                 dropout: float):
        super().__init__()
        self.embedding, self.domain_embedding, self.input_norm = embedding, domain_embedding, input_norm
        self.layers, self.norms, self.out, self.auxiliary = layers, norms, out, auxiliary
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        x = self.embedding(features)[0]  # (B, F*d)
        aux_in = torch.cat([self.domain_embedding(domains.unsqueeze(1))[0], x], dim=-1)  # (B, d + F*d)
        h = self.input_norm(x, domains) if self.input_norm is not None else x
        for i, layer in enumerate(self.layers):
            h = layer(h, domains)  # (B, H)
            if self.norms is not None:
                h = self.norms[i](h, domains)
            h = self.dropout(torch.relu(h))
        main = self.out(h, domains).squeeze(-1)  # (B,)
        return ModelOutput(main + self.auxiliary(aux_in.unsqueeze(0))[0].squeeze(-1), None, None)


def build_star(*, vocab_sizes: tuple[int, ...], num_domains: int, embedding_dim: int, embedding_init_std: float,
               expert_hidden: tuple[int, ...], tower_hidden: tuple[int, ...], norm: str, dropout: float) -> STAR:
    in_dim = len(vocab_sizes) * embedding_dim
    widths = (in_dim,) + expert_hidden + tower_hidden

    def partitioned(width: int) -> DomainNorm:
        return DomainNorm(norm, num_domains=num_domains, width=width, shared_affine=True)

    return STAR(
        embedding=MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=1, dim=embedding_dim, init_std=embedding_init_std),
        domain_embedding=MultiEmbedding(vocab_sizes=(num_domains,), num_sets=1, dim=embedding_dim,
                                        init_std=embedding_init_std),
        input_norm=partitioned(in_dim) if norm != "none" else None,
        layers=nn.ModuleList(StarLinear(num_domains=num_domains, in_dim=a, out_dim=b)
                             for a, b in zip(widths[:-1], widths[1:])),
        norms=nn.ModuleList(partitioned(w) for w in widths[1:]) if norm != "none" else None,
        out=StarLinear(num_domains=num_domains, in_dim=widths[-1], out_dim=1),
        auxiliary=BatchedMLP(num_models=1, in_dim=embedding_dim + in_dim, hidden=tower_hidden, out_dim=1, norm=norm,
                             dropout=dropout),
        dropout=dropout,
    )
