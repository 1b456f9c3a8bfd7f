"""Building blocks: a multi-set embedding with one lookup, and M MLPs run as one batched matmul.

Letters: B rows, F fields, d embedding dim, M sets/experts, H hidden width.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class MultiEmbedding(nn.Module):
    """M embedding sets over F fields, stored as one (sum of vocab sizes, M*d) table.

    Field f's ids are shifted by the sum of the earlier fields' vocabulary sizes, so every set and
    field is served by a single lookup.
    """

    def __init__(self, *, vocab_sizes: tuple[int, ...], num_sets: int, dim: int):
        super().__init__()
        self.num_sets, self.dim, self.num_fields = num_sets, dim, len(vocab_sizes)
        offsets = torch.tensor((0,) + tuple(vocab_sizes[:-1]), dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.table = nn.Embedding(sum(vocab_sizes), num_sets * dim)
        nn.init.normal_(self.table.weight, std=1e-2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> (M, B, F*d)."""
        rows = self.table(features + self.offsets)  # (B, F, M*d)
        batch = features.shape[0]
        rows = rows.view(batch, self.num_fields, self.num_sets, self.dim)  # (B, F, M, d)
        return rows.permute(2, 0, 1, 3).reshape(self.num_sets, batch, self.num_fields * self.dim)  # (M, B, F*d)


class BatchedMLP(nn.Module):
    """M independent MLPs with ReLU after every layer, evaluated together with batched matmuls."""

    def __init__(self, *, num_models: int, in_dim: int, hidden: tuple[int, ...]):
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip((in_dim,) + hidden[:-1], hidden):
            bound = 1 / math.sqrt(fan_in)  # nn.Linear's default init, per model
            self.weights.append(nn.Parameter(torch.empty(num_models, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_models, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, B, in) -> (M, B, hidden[-1])."""
        for weight, bias in zip(self.weights, self.biases):
            x = torch.relu(torch.baddbmm(bias, x, weight))  # (M, B, H)
        return x


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    """Linear+ReLU per hidden width, then a plain Linear to out_dim."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)
