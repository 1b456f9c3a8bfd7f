"""What every architecture's forward returns."""
from __future__ import annotations

from typing import NamedTuple

import torch


class ModelOutput(NamedTuple):
    """Methods without experts return None for expert_outputs and gates (no aux loss applies to them).

    penalty: a term the method adds to its own loss, already weighted (AdaSparse's sparsity
    regulariser); None for the others.
    """

    logits: torch.Tensor  # (B,) logit of each sample's own domain tower
    expert_outputs: torch.Tensor | None  # (M, B, D)
    gates: torch.Tensor | None  # (B, M) weight of each expert in the row's representation (mean over D when element-wise)
    penalty: torch.Tensor | None = None  # () scalar
