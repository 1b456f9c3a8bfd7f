"""PEPNet (Chang et al. 2023) for domains: EPNet scales the embedding per domain, PPNet scales every
hidden layer per user/item, then per-domain towers.

Letters: B rows, F fields, d embedding dim, S domains, P prior fields (user id, item id, domain id).

  * Gate neural unit: GateNU(x) = 2 * sigmoid(W2 relu(W1 x + b1) + b2), in (0, 2), 1 at zero logits.
  * EPNet: delta = GateNU([E_d, sg(E)]) scales the general embedding, O_ep = delta * E, where E_d
    is the domain's embedding and sg the stop-gradient: the gate does not train E.
  * PPNet: before every hidden layer l of the DNN, h_l = GateNU_l([E_prior, sg(O_ep)]) * h_l,
    with E_prior the prior fields' embeddings; the DNN starts from h_0 = O_ep.

Choices: the DNN has the widths expert_hidden and feeds per-domain towers (tower_hidden), the
multi-domain reading of PEPNet's per-task towers; GateNU's hidden width is its output width (as in
Scenario-Wise-Rec); E_d comes from a table of its own (S rows, d columns; the paper also adds
domain statistics, which our data lack); E_prior is looked up in the general table.
"""
from __future__ import annotations

import torch
from torch import nn

from model.layers import BatchedMLP, MultiEmbedding, PerDomainMLP
from model.nets.output import ModelOutput

GATE_SCALE = 2.0  # gamma of the gate neural unit


class GateUnit(nn.Module):
    """PEPNet's gate neural unit: x (B, in) -> gamma * sigmoid(MLP(x)) (B, out), in (0, gamma)."""

    def __init__(self, *, in_dim: int, out_dim: int):
        super().__init__()
        self.mlp = BatchedMLP(num_models=1, in_dim=in_dim, hidden=(out_dim,), out_dim=out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return GATE_SCALE * torch.sigmoid(self.mlp(x.unsqueeze(0))[0])


class PEPNet(nn.Module):
    def __init__(self, *, embedding: MultiEmbedding, domain_embedding: MultiEmbedding, prior_fields: tuple[int, ...],
                 epnet: GateUnit, ppnet: nn.ModuleList, layers: nn.ModuleList, towers: PerDomainMLP,
                 embedding_dim: int):
        super().__init__()
        self.embedding, self.domain_embedding, self.epnet, self.ppnet = embedding, domain_embedding, epnet, ppnet
        self.layers, self.towers, self.embedding_dim = layers, towers, embedding_dim
        self.register_buffer("prior_fields", torch.tensor(prior_fields, dtype=torch.int64), persistent=False)

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        general = self.embedding(features)[0]  # (B, F*d)
        batch = general.shape[0]
        domain = self.domain_embedding(domains.unsqueeze(1))[0]  # (B, d)
        o_ep = self.epnet(torch.cat([domain, general.detach()], dim=-1)) * general  # (B, F*d)
        fields = general.view(batch, -1, self.embedding_dim)  # (B, F, d)
        prior = fields.index_select(1, self.prior_fields).flatten(1)  # (B, P*d)
        gate_in = torch.cat([prior, o_ep.detach()], dim=-1)  # (B, P*d + F*d)
        h = o_ep
        for gate, layer in zip(self.ppnet, self.layers):
            h = layer((gate(gate_in) * h).unsqueeze(0))[0]  # (B, H)
        return ModelOutput(self.towers(h, domains).squeeze(-1), None, None)


def build_pepnet(*, vocab_sizes: tuple[int, ...], num_domains: int, prior_fields: tuple[int, ...], embedding_dim: int,
                 embedding_init_std: float, expert_hidden: tuple[int, ...], tower_hidden: tuple[int, ...], norm: str,
                 dropout: float) -> PEPNet:
    in_dim = len(vocab_sizes) * embedding_dim
    widths = (in_dim,) + expert_hidden
    gate_in = len(prior_fields) * embedding_dim + in_dim
    return PEPNet(
        embedding=MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=1, dim=embedding_dim, init_std=embedding_init_std),
        domain_embedding=MultiEmbedding(vocab_sizes=(num_domains,), num_sets=1, dim=embedding_dim,
                                        init_std=embedding_init_std),
        prior_fields=prior_fields,
        epnet=GateUnit(in_dim=embedding_dim + in_dim, out_dim=in_dim),
        ppnet=nn.ModuleList(GateUnit(in_dim=gate_in, out_dim=w) for w in widths[:-1]),
        layers=nn.ModuleList(BatchedMLP(num_models=1, in_dim=a, hidden=(b,), norm=norm, dropout=dropout)
                             for a, b in zip(widths[:-1], widths[1:])),
        towers=PerDomainMLP(num_domains=num_domains, in_dim=expert_hidden[-1], hidden=tower_hidden, out_dim=1,
                            norm=norm, dropout=dropout),
        embedding_dim=embedding_dim,
    )
