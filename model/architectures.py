"""The model family: one config for every architecture, and the explicit table of architectures.

`ModelConfig` holds every model key (flat, as on the command line); each architecture's builder
reads the keys it uses and passes them to its module as explicit arguments.

Keys per architecture (ARCHITECTURES below): `embedding` and `gating` take only the values an
architecture allows, the first being its default; `aux_loss` must be none where there are no
experts; the optional keys (num_embeddings, shared_experts, ...) keep their defaults where an
architecture does not read them. A key that contradicts the architecture fails naming both,
rather than being ignored. `RunConfig.with_overrides` moves the keys a config left at its old
architecture's defaults to the new one's, so `architecture=star` alone is a valid STAR.

mmoe is the Crocodile module with standard gating (SE: MMoE, ME: ME-MMoE, whose gate s reads
embedding set s); gating=pg/eg/peg there is an error that points to architecture=crocodile.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable

from torch import nn

from model.init import seed_parameters
from model.layers import NORMS
from model.losses import AUX_LOSSES
from model.nets.adasparse import build_adasparse
from model.nets.crocodile import EMBEDDINGS, GATINGS, build_crocodile
from model.nets.hinet import build_hinet
from model.nets.pepnet import build_pepnet
from model.nets.ple import build_ple
from model.nets.shared_bottom import build_shared_bottom
from model.nets.single_domain import build_single_domain
from model.nets.star import build_star
from model.nets.stem import build_stem

MAX_EMBEDDINGS = 16
MAX_EXPERTS = 16  # shared_experts, specific_experts
MAX_LEVELS = 8
NO_GATING = "none"  # the `gating` of architectures without MoE gates
# Keys only some architectures read; the others keep them at their defaults.
OPTIONAL_KEYS = ("num_embeddings", "shared_experts", "specific_experts", "ple_levels", "sparsity_target",
                 "sparsity_weight")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a model variant. The defaults are Crocodile's; num_embeddings (M) is
    also its number of experts."""

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
    shared_experts: int = 1  # ple, stem, hinet: shared experts (HiNet: shared sub-experts)
    specific_experts: int = 1  # ple, stem, hinet: experts of each domain
    ple_levels: int = 2  # ple: CGC levels
    sparsity_target: float = 0.2  # adasparse: fraction of zero weighting factors per layer
    sparsity_weight: float = 0.01  # adasparse: weight of the sparsity regulariser

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.architecture!r}; valid: {sorted(ARCHITECTURES)}")
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, but got {self.embedding=}")
        if self.gating not in GATINGS and self.gating != NO_GATING:
            raise ValueError(f"unknown gating {self.gating!r}; valid: {sorted(GATINGS)} (or {NO_GATING!r} for "
                             f"architectures without gates)")
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
        for key in ("shared_experts", "specific_experts"):
            if not 1 <= getattr(self, key) <= MAX_EXPERTS:
                raise ValueError(f"{key} must be in [1, {MAX_EXPERTS}], but got {key}={getattr(self, key)!r}")
        if not 1 <= self.ple_levels <= MAX_LEVELS:
            raise ValueError(f"ple_levels must be in [1, {MAX_LEVELS}], but got {self.ple_levels=}")
        if not 0 <= self.sparsity_target < 1:
            raise ValueError(f"sparsity_target must be in [0, 1), but got {self.sparsity_target=}")
        if not 0 <= self.sparsity_weight < float("inf"):
            raise ValueError(f"sparsity_weight must be a finite number >= 0, but got {self.sparsity_weight=}")
        self._check_architecture()

    def _check_architecture(self) -> None:
        """The keys that must agree with the architecture (see the module docstring)."""
        name, arch = self.architecture, ARCHITECTURES[self.architecture]
        if self.embedding not in arch.embeddings:
            allows_me = sorted(n for n, a in ARCHITECTURES.items() if "ME" in a.embeddings)
            raise ValueError(f"architecture={name!r} takes embedding in {list(arch.embeddings)} (ME is defined for "
                             f"{allows_me}), but got embedding={self.embedding!r}")
        if self.gating not in arch.gatings:
            if name == "mmoe":
                raise ValueError(f"architecture='mmoe' is the Crocodile module with standard gating, but got "
                                 f"gating={self.gating!r}; for gating={self.gating!r} use architecture=crocodile")
            raise ValueError(f"architecture={name!r} has its own gates and does not read gating; leave it at "
                             f"{arch.gatings[0]!r}, but got gating={self.gating!r}")
        if not arch.has_experts and self.aux_loss != "none":
            with_experts = sorted(n for n, a in ARCHITECTURES.items() if a.has_experts)
            raise ValueError(f"architecture={name!r} has no experts, so no auxiliary loss applies: set aux_loss=none "
                             f"(aux losses need one of {with_experts}), but got aux_loss={self.aux_loss!r}")
        for key in OPTIONAL_KEYS:
            default = _FIELD_DEFAULTS[key]
            if key not in arch.reads and getattr(self, key) != default:
                raise ValueError(f"architecture={name!r} does not read {key}; leave it at its default {default!r}, "
                                 f"but got {key}={getattr(self, key)!r}")
        if name == "ple" and self.ple_levels > len(self.expert_hidden):
            raise ValueError(f"ple splits expert_hidden over its levels, so ple_levels must be <= the "
                             f"{len(self.expert_hidden)} widths of expert_hidden={self.expert_hidden}, but got "
                             f"ple_levels={self.ple_levels}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def defaults(cls, architecture: str) -> "ModelConfig":
        """The default config of an architecture."""
        return cls().rebased(architecture)

    def rebased(self, architecture: str, changes: dict | None = None) -> "ModelConfig":
        """This config for another architecture: keys left at the old architecture's defaults take
        the new one's, the others stay (and must agree with it); then `changes` apply."""
        if architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {architecture!r}; valid: {sorted(ARCHITECTURES)}")
        old, new = architecture_defaults(self.architecture), architecture_defaults(architecture)
        moved = {key: new[key] for key in new if getattr(self, key) == old[key]}
        return replace(self, **{**moved, "architecture": architecture, **(changes or {})})

    @property
    def uses_prior(self) -> bool:
        """Whether the model reads the prior fields (user id, item id, domain id) separately."""
        return ARCHITECTURES[self.architecture].prior or (self.gating in GATINGS and GATINGS[self.gating].prior)

    @property
    def has_experts(self) -> bool:
        return ARCHITECTURES[self.architecture].has_experts


Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class Architecture:
    """One entry of ARCHITECTURES.

    build(config, vocab_sizes=, num_domains=, prior_fields=) returns a module whose
    forward(features (B, F), domains (B,)) returns a ModelOutput. embeddings/gatings: the values
    it allows, the first being its default. has_experts: it returns expert outputs and gates (aux
    losses apply). reads: the OPTIONAL_KEYS it reads. prior: it always reads the prior fields.
    overall: its overall metrics are meaningful (single_domain: its domains' scores come from
    different models, so tables show "-").
    """

    build: Builder
    embeddings: tuple[str, ...]
    gatings: tuple[str, ...]
    has_experts: bool
    default_aux_loss: str = "none"
    reads: frozenset[str] = frozenset()
    prior: bool = False
    overall: bool = True


def architecture_defaults(name: str) -> dict:
    """The keys whose default depends on the architecture, with its defaults."""
    arch = ARCHITECTURES[name]
    return {"embedding": arch.embeddings[0], "gating": arch.gatings[0], "aux_loss": arch.default_aux_loss}


def _crocodile(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
               prior_fields: tuple[int, ...]) -> nn.Module:
    return build_crocodile(
        vocab_sizes=vocab_sizes, num_domains=num_domains, prior_fields=prior_fields, embedding=config.embedding,
        num_embeddings=config.num_embeddings, embedding_dim=config.embedding_dim,
        embedding_init_std=config.embedding_init_std, expert_hidden=config.expert_hidden,
        tower_hidden=config.tower_hidden, gating=config.gating, norm=config.norm, dropout=config.dropout)


def _single_domain(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
                   prior_fields: tuple[int, ...]) -> nn.Module:
    return build_single_domain(
        vocab_sizes=vocab_sizes, num_domains=num_domains, embedding_dim=config.embedding_dim,
        embedding_init_std=config.embedding_init_std, hidden=config.expert_hidden + config.tower_hidden,
        norm=config.norm, dropout=config.dropout)


def _shared_bottom(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
                   prior_fields: tuple[int, ...]) -> nn.Module:
    return build_shared_bottom(
        vocab_sizes=vocab_sizes, num_domains=num_domains, embedding_dim=config.embedding_dim,
        embedding_init_std=config.embedding_init_std, expert_hidden=config.expert_hidden,
        tower_hidden=config.tower_hidden, norm=config.norm, dropout=config.dropout)


def _ple(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
         prior_fields: tuple[int, ...]) -> nn.Module:
    return build_ple(
        vocab_sizes=vocab_sizes, num_domains=num_domains, embedding=config.embedding,
        embedding_dim=config.embedding_dim, embedding_init_std=config.embedding_init_std,
        expert_hidden=config.expert_hidden, tower_hidden=config.tower_hidden, shared_experts=config.shared_experts,
        specific_experts=config.specific_experts, num_levels=config.ple_levels, norm=config.norm,
        dropout=config.dropout)


def _stem(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
          prior_fields: tuple[int, ...]) -> nn.Module:
    return build_stem(
        vocab_sizes=vocab_sizes, num_domains=num_domains, embedding_dim=config.embedding_dim,
        embedding_init_std=config.embedding_init_std, expert_hidden=config.expert_hidden,
        tower_hidden=config.tower_hidden, shared_experts=config.shared_experts,
        specific_experts=config.specific_experts, norm=config.norm, dropout=config.dropout)


def _hinet(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
           prior_fields: tuple[int, ...]) -> nn.Module:
    return build_hinet(
        vocab_sizes=vocab_sizes, num_domains=num_domains, embedding_dim=config.embedding_dim,
        embedding_init_std=config.embedding_init_std, expert_hidden=config.expert_hidden,
        tower_hidden=config.tower_hidden, shared_experts=config.shared_experts,
        specific_experts=config.specific_experts, norm=config.norm, dropout=config.dropout)


def _pepnet(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
            prior_fields: tuple[int, ...]) -> nn.Module:
    return build_pepnet(
        vocab_sizes=vocab_sizes, num_domains=num_domains, prior_fields=prior_fields,
        embedding_dim=config.embedding_dim, embedding_init_std=config.embedding_init_std,
        expert_hidden=config.expert_hidden, tower_hidden=config.tower_hidden, norm=config.norm,
        dropout=config.dropout)


def _star(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
          prior_fields: tuple[int, ...]) -> nn.Module:
    return build_star(
        vocab_sizes=vocab_sizes, num_domains=num_domains, embedding_dim=config.embedding_dim,
        embedding_init_std=config.embedding_init_std, expert_hidden=config.expert_hidden,
        tower_hidden=config.tower_hidden, norm=config.norm, dropout=config.dropout)


def _adasparse(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
               prior_fields: tuple[int, ...]) -> nn.Module:
    return build_adasparse(
        vocab_sizes=vocab_sizes, num_domains=num_domains, embedding_dim=config.embedding_dim,
        embedding_init_std=config.embedding_init_std, expert_hidden=config.expert_hidden,
        tower_hidden=config.tower_hidden, sparsity_target=config.sparsity_target,
        sparsity_weight=config.sparsity_weight, norm=config.norm, dropout=config.dropout)


_EXPERT_COUNTS = frozenset({"shared_experts", "specific_experts"})
# Table 2/3 of the paper, by the names users type (README: the methods table).
ARCHITECTURES: dict[str, Architecture] = {
    "crocodile": Architecture(_crocodile, embeddings=("ME", "SE"), gatings=("peg", "pg", "eg", "standard"),
                              has_experts=True, default_aux_loss="cov", reads=frozenset({"num_embeddings"})),
    "single_domain": Architecture(_single_domain, embeddings=("SE",), gatings=(NO_GATING,), has_experts=False,
                                  overall=False),
    "shared_bottom": Architecture(_shared_bottom, embeddings=("SE",), gatings=(NO_GATING,), has_experts=False),
    "mmoe": Architecture(_crocodile, embeddings=("SE", "ME"), gatings=("standard",), has_experts=True,
                         reads=frozenset({"num_embeddings"})),
    "ple": Architecture(_ple, embeddings=("SE", "ME"), gatings=("standard",), has_experts=True,
                        reads=_EXPERT_COUNTS | {"ple_levels"}),
    "stem": Architecture(_stem, embeddings=("ME",), gatings=("standard",), has_experts=True, reads=_EXPERT_COUNTS),
    "pepnet": Architecture(_pepnet, embeddings=("SE",), gatings=(NO_GATING,), has_experts=False, prior=True),
    "hinet": Architecture(_hinet, embeddings=("SE",), gatings=("standard",), has_experts=True, reads=_EXPERT_COUNTS),
    "star": Architecture(_star, embeddings=("SE",), gatings=(NO_GATING,), has_experts=False),
    "adasparse": Architecture(_adasparse, embeddings=("SE",), gatings=(NO_GATING,), has_experts=False,
                              reads=frozenset({"sparsity_target", "sparsity_weight"})),
}
_FIELD_DEFAULTS = {f.name: f.default for f in fields(ModelConfig)}


def build_model(config: ModelConfig, *, vocab_sizes: tuple[int, ...], num_domains: int,
                prior_fields: tuple[int, ...], seed: int = 0) -> nn.Module:
    """The configured architecture, every module initialised from (seed, its path)."""
    model = ARCHITECTURES[config.architecture].build(config, vocab_sizes=vocab_sizes, num_domains=num_domains,
                                                     prior_fields=prior_fields)
    return seed_parameters(model, seed)
