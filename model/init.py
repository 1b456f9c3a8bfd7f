"""Per-module seeded initialisation: a module's initial weights depend on (seed, its path) only.

Two variants that share a module (same path, same shape: towers, gates, expert MLPs) then start
from identical weights under the same seed, whatever else each builds and in whatever order, so
their per-seed results are paired by construction. A seed-batched run (K seeds stacked) can
reproduce each seed's init exactly.
"""
from __future__ import annotations

import zlib

import torch
from torch import nn


def module_seed(seed: int, path: str) -> int:
    """A stable 63-bit seed for one module (crc32 is the same in every process, unlike hash())."""
    return (seed * 1_000_003 + zlib.crc32(path.encode())) % (2**63 - 1)


def seed_parameters(model: nn.Module, seed: int) -> nn.Module:
    """Re-initialise every module that owns parameters from its own stream; returns the model.

    Every such module must define reset_parameters (all of ours and torch's layers do); one that
    does not is an error, so a new layer cannot silently share the global random stream.
    """
    for path, module in model.named_modules():
        if next(module.parameters(recurse=False), None) is None:
            continue
        if not hasattr(module, "reset_parameters"):
            raise TypeError(f"module {path!r} ({type(module).__name__}) owns parameters but has no "
                            f"reset_parameters(), so it cannot be seeded per module")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(module_seed(seed, path))
            module.reset_parameters()
    return model
