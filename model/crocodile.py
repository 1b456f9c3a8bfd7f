"""The Crocodile model family: SE/ME embeddings, M expert MLPs, four gatings, per-domain towers.

Letters: B rows, F fields, d embedding dim, M experts (= embedding sets under ME), D expert output
dim, S domains, P prior fields (user id, item id, domain id), Dg gate width (1, or D element-wise).

Variants by name (the paper's Tables 4-6):
  SE + standard + none  = MMoE          ME + standard = ME-MMoE
  ME + pg               = ME-MMoE-PG    ME + peg + cov = Crocodile
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import torch
from torch import nn

from model.layers import BatchedMLP, MultiEmbedding, mlp
from model.losses import AUX_LOSSES


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
MAX_EMBEDDINGS = 16


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a model variant. num_embeddings (M) is also the number of experts."""

    embedding: str = "ME"
    num_embeddings: int = 5
    embedding_dim: int = 16
    expert_hidden: tuple[int, ...] = (128, 64)
    tower_hidden: tuple[int, ...] = (32,)
    gating: str = "peg"
    aux_loss: str = "cov"
    alpha: float = 0.1  # our CovLoss has a 1/B: alpha 0.1 at 1024 rows ~ the paper's 1e-4
    aux_rows: int = 1024  # rows of the batch the aux loss sees; 0 = all

    def __post_init__(self):
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, but got {self.embedding=}")
        if self.gating not in GATINGS:
            raise ValueError(f"unknown gating {self.gating!r}; valid: {sorted(GATINGS)}")
        if self.aux_loss not in AUX_LOSSES:
            raise ValueError(f"unknown aux_loss {self.aux_loss!r}; valid: {sorted(AUX_LOSSES)}")
        if not 1 <= self.num_embeddings <= MAX_EMBEDDINGS:
            raise ValueError(f"num_embeddings must be in [1, {MAX_EMBEDDINGS}], but got {self.num_embeddings=}")
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, but got {self.embedding_dim=}")
        if not self.expert_hidden or min(self.expert_hidden) < 1:
            raise ValueError(f"expert_hidden must be a non-empty tuple of positive widths, but got {self.expert_hidden=}")
        if self.tower_hidden and min(self.tower_hidden) < 1:
            raise ValueError(f"tower_hidden widths must be positive, but got {self.tower_hidden=}")
        if not 0 <= self.alpha < float("inf"):
            raise ValueError(f"alpha must be a finite number >= 0, but got {self.alpha=}")
        if self.aux_rows < 0:
            raise ValueError(f"aux_rows must be >= 0 (0 = all rows), but got {self.aux_rows=}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


class ModelOutput(NamedTuple):
    logits: torch.Tensor  # (B,) logit of each sample's own domain tower
    expert_outputs: torch.Tensor  # (M, B, D)
    gates: torch.Tensor  # (B, M) gate weight per expert (mean over D when element-wise)


class Crocodile(nn.Module):
    def __init__(self, *, embedding: MultiEmbedding, prior_embedding: MultiEmbedding | None,
                 prior_fields: tuple[int, ...], experts: BatchedMLP, gates: nn.ModuleList,
                 towers: nn.ModuleList, num_experts: int, gate_width: int):
        super().__init__()
        self.embedding, self.prior_embedding, self.experts = embedding, prior_embedding, experts
        self.gates, self.towers = gates, towers
        self.num_experts, self.gate_width = num_experts, gate_width
        self.register_buffer("prior_fields", torch.tensor(prior_fields, dtype=torch.int64), persistent=False)

    def forward(self, features: torch.Tensor, domains: torch.Tensor) -> ModelOutput:
        """features (B, F) int ids, domains (B,) int in [0, S)."""
        batch, num_domains = features.shape[0], len(self.towers)
        embedded = self.embedding(features)  # (1 or M, B, F*d)
        expert_in = embedded.expand(self.num_experts, -1, -1)  # SE: every expert reads set 0
        outputs = self.experts(expert_in)  # (M, B, D)
        if self.prior_embedding is not None:
            gate_in = self.prior_embedding(features.index_select(1, self.prior_fields))[0]  # (B, P*d)
        else:
            gate_in = embedded[0]  # (B, F*d)

        # Group rows by domain so each domain's gate and tower runs only on its own rows.
        order = torch.argsort(domains, stable=True)
        counts = torch.bincount(domains, minlength=num_domains).tolist()
        outputs_by_row = outputs.transpose(0, 1)[order]  # (B, M, D), domain-sorted
        gate_in = gate_in[order]
        logits, gates, start = [], [], 0
        for s, n in enumerate(counts):
            if n == 0:
                continue
            rows = slice(start, start + n)
            start += n
            g = self.gates[s](gate_in[rows]).view(n, self.num_experts, self.gate_width).softmax(dim=1)  # (n, M, Dg)
            mixed = (g * outputs_by_row[rows]).sum(dim=1)  # (n, D)
            logits.append(self.towers[s](mixed).squeeze(-1))  # (n,)
            gates.append(g.mean(dim=-1))  # (n, M)
        inverse = torch.empty_like(order).scatter_(0, order, torch.arange(batch, device=order.device))
        return ModelOutput(torch.cat(logits)[inverse], outputs, torch.cat(gates)[inverse])


def build_model(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
                prior_fields: tuple[int, ...]) -> Crocodile:
    """Assemble a Crocodile from its parts. prior_fields: column indices of user/item/domain id."""
    gating = GATINGS[config.gating]
    num_experts, dim = config.num_embeddings, config.embedding_dim
    embedding = MultiEmbedding(vocab_sizes=vocab_sizes, num_sets=num_experts if config.embedding == "ME" else 1,
                               dim=dim)
    prior_embedding = None
    gate_in = len(vocab_sizes) * dim
    if gating.prior:
        # Domain-independent and separate from the experts' tables (paper Sec. 4.4).
        prior_embedding = MultiEmbedding(vocab_sizes=tuple(vocab_sizes[i] for i in prior_fields), num_sets=1, dim=dim)
        gate_in = len(prior_fields) * dim
    expert_dim = config.expert_hidden[-1]
    gate_width = expert_dim if gating.elementwise else 1
    return Crocodile(
        embedding=embedding,
        prior_embedding=prior_embedding,
        prior_fields=prior_fields,
        experts=BatchedMLP(num_models=num_experts, in_dim=len(vocab_sizes) * dim, hidden=config.expert_hidden),
        gates=nn.ModuleList(nn.Linear(gate_in, num_experts * gate_width) for _ in range(num_domains)),
        towers=nn.ModuleList(mlp(expert_dim, config.tower_hidden, 1) for _ in range(num_domains)),
        num_experts=num_experts,
        gate_width=gate_width,
    )
