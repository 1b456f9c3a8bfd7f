"""The pieces one run is made of, shared by the one-model loop (model/train.py) and the
stacked-seed loop (model/seed_batch.py): the result, the checks made before training, the model a
config builds, the compiled step, and evaluation (sharded by rank under torch.distributed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from model.architectures import build_model
from model.config import RunConfig
from model.data import MultiDomainData, SplitTensors
from model.losses import at_least_float32
from model.metrics import evaluate


@dataclass
class RunResult:
    metrics: dict[str, float]  # test_* with the best epoch's weights, plus that epoch's val_*
    best_epoch: int
    epochs_run: int
    wall_time_s: float
    samples_per_s: float  # training rows per second of training time (evaluation excluded)
    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None  # the best epoch's state dict (what the test metrics were computed with)
    resumed_from_epoch: int = 0  # the epoch of the state this run resumed from (0: a fresh start)
    # Mechanism diagnostics (model/probe.py; empty with diagnostics=false): the best epoch's scalars
    # and spectra, the scalars of every diagnostics_every-th epoch, and the seconds they took.
    diagnostics: dict[str, float] = field(default_factory=dict)
    spectra: dict[str, list[float]] = field(default_factory=dict)
    diagnostics_epochs: list[dict] = field(default_factory=list)
    diagnostics_s: float = 0.0


def check_run(config: RunConfig, data: MultiDomainData) -> None:
    """Errors that depend on config and data together, raised before any training."""
    domain = config.train.monitor.split("_", 2)[2]
    if domain != "overall" and domain not in data.domain_names:
        raise ValueError(f"monitor {config.train.monitor!r} names domain {domain!r}, which is not one of "
                         f"{['overall', *data.domain_names]}")
    if config.model.uses_prior:
        data.prior_field_indices()


def check_compile(compile_step: bool, device: torch.device) -> None:
    """compile=true captures the step as CUDA graphs; on CPU it is refused rather than run slower."""
    if compile_step and device.type != "cuda":
        raise ValueError(f"compile=true needs a CUDA device (the step is captured as CUDA graphs), but the run is "
                         f"on {device}: set compile=false")


def compiled(module: torch.nn.Module) -> torch.nn.Module:
    """The module compiled for static shapes, its launches captured as CUDA graphs (reduce-overhead)."""
    return torch.compile(module, mode="reduce-overhead", dynamic=False)


def model_for(config: RunConfig, data: MultiDomainData) -> torch.nn.Module:
    """The model of config for data's vocabularies and domains, initialised from (seed, module path)."""
    mcfg = config.model
    return build_model(mcfg, vocab_sizes=data.vocab_sizes, num_domains=data.num_domains,
                       prior_fields=data.prior_field_indices() if mcfg.uses_prior else (), seed=config.train.seed)


@torch.no_grad()
def predict(model: torch.nn.Module, rows: SplitTensors, batch_size: int, autocast) -> torch.Tensor:
    """Logits (n,) for all rows. Under torch.distributed each rank scores rows r, r+W, ... and the
    shards are gathered back into row order, so metrics see every prediction (gAUC stays exact)."""
    model.eval()
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    n = len(rows)
    mine = torch.arange(rank, n, world, device=rows.features.device)
    parts = []
    for start in range(0, mine.numel(), batch_size):
        idx = mine[start:start + batch_size]
        with autocast:
            parts.append(at_least_float32(model(rows.features[idx], rows.domains[idx]).logits))
    logits = torch.cat(parts) if parts else torch.zeros(0, device=rows.features.device)
    if world == 1:
        return logits
    shard_len = (n + world - 1) // world
    padded = torch.zeros(shard_len, device=logits.device)
    padded[:logits.numel()] = logits
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    full = torch.empty(n, device=logits.device)
    for r in range(world):
        full[r::world] = gathered[r][:len(range(r, n, world))]
    return full


def predict_and_evaluate(model: torch.nn.Module, split_name: str, rows: SplitTensors, domain_names: tuple[str, ...],
                         batch_size: int, autocast) -> dict[str, float]:
    logits = predict(model, rows, batch_size, autocast)
    return evaluate(split_name, logits, rows.labels, rows.domains, rows.users, domain_names, rows.truth)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
