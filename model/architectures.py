"""The model family: one config for every architecture, and the explicit table of architectures.

`ModelConfig` holds every model key (flat, as on the command line); each architecture's builder
reads the keys it uses and passes them to its module as explicit arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

from torch import nn

from model.init import seed_parameters
from model.layers import NORMS
from model.losses import AUX_LOSSES
from model.nets.crocodile import EMBEDDINGS, GATINGS, build_crocodile

MAX_EMBEDDINGS = 16


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a model variant. num_embeddings (M) is also the number of experts."""

    architecture: str = "crocodile"
    embedding: str = "ME"
    num_embeddings: int = 5
    embedding_dim: int = 16
    embedding_init_std: float = 1e-2
    expert_hidden: tuple[int, ...] = (128, 64)
    tower_hidden: tuple[int, ...] = (32,)
    gating: str = "peg"
    norm: str = "batch"
    dropout: float = 0.0
    aux_loss: str = "cov"
    alpha: float = 0.1  # our CovLoss has a 1/B: alpha 0.1 at 1024 rows ~ the paper's 1e-4
    aux_rows: int = 1024  # rows of the batch the aux loss sees; 0 = all

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; valid: {sorted(ARCHITECTURES)}")
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, but got {self.embedding=}")
        if self.gating not in GATINGS:
            raise ValueError(f"unknown gating {self.gating!r}; valid: {sorted(GATINGS)}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; valid: {list(NORMS)}")
        if self.aux_loss not in AUX_LOSSES:
            raise ValueError(f"unknown aux_loss {self.aux_loss!r}; valid: {sorted(AUX_LOSSES)}")
        if not 1 <= self.num_embeddings <= MAX_EMBEDDINGS:
            raise ValueError(f"num_embeddings must be in [1, {MAX_EMBEDDINGS}], but got {self.num_embeddings=}")
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, but got {self.embedding_dim=}")
        if not self.embedding_init_std > 0:
            raise ValueError(f"embedding_init_std must be > 0, but got {self.embedding_init_std=}")
        if not self.expert_hidden or min(self.expert_hidden) < 1:
            raise ValueError(f"expert_hidden must be a non-empty tuple of positive widths, but got {self.expert_hidden=}")
        if self.tower_hidden and min(self.tower_hidden) < 1:
            raise ValueError(f"tower_hidden widths must be positive, but got {self.tower_hidden=}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), but got {self.dropout=}")
        if not 0 <= self.alpha < float("inf"):
            raise ValueError(f"alpha must be a finite number >= 0, but got {self.alpha=}")
        if self.aux_rows < 0:
            raise ValueError(f"aux_rows must be >= 0 (0 = all rows), but got {self.aux_rows=}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @property
    def uses_prior(self) -> bool:
        """Whether the model reads the prior fields (user id, item id, domain id) separately."""
        return GATINGS[self.gating].prior


Builder = Callable[..., nn.Module]


def _crocodile(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
               prior_fields: tuple[int, ...]) -> nn.Module:
    return build_crocodile(
        vocab_sizes=vocab_sizes, num_domains=num_domains, prior_fields=prior_fields, embedding=config.embedding,
        num_embeddings=config.num_embeddings, embedding_dim=config.embedding_dim,
        embedding_init_std=config.embedding_init_std, expert_hidden=config.expert_hidden,
        tower_hidden=config.tower_hidden, gating=config.gating, norm=config.norm, dropout=config.dropout)


# name -> builder(config, vocab_sizes=, num_domains=, prior_fields=) returning a module whose
# forward(features (B, F), domains (B,)) returns a ModelOutput.
ARCHITECTURES: dict[str, Builder] = {
    "crocodile": _crocodile,
}


def build_model(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
                prior_fields: tuple[int, ...], seed: int = 0) -> nn.Module:
    """The configured architecture, every module initialised from (seed, its path)."""
    model = ARCHITECTURES[config.architecture](config, vocab_sizes=vocab_sizes, num_domains=num_domains,
                                               prior_fields=prior_fields)
    return seed_parameters(model, seed)
