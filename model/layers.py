"""Building blocks shared by every architecture: a multi-set embedding with one lookup, M MLPs run
as batched matmuls (with normalisation and dropout), and the per-domain layers built on them.

Letters: B rows, F fields, d embedding dim, M sets/models, H hidden width, S domains, O output width.

Per-domain parts (gates, towers, domain-specific weights) have static shapes on a GPU: every
domain's module runs on every row and each row keeps its own domain's result (`own_domain`). There
is no host synchronisation and no Python loop over the domains present in a batch, so a training
step can be compiled and captured as one graph. In eager CPU runs, wide per-domain linear layers
group rows by domain instead, which is faster there (per_domain_linear; benchmarks/throughput.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# norm: "none"; "batch": per model and unit over the rows of the batch (running statistics in
# eval); "layer": per row over the units of the layer.
NORMS = ("none", "batch", "layer")


class MultiEmbedding(nn.Module):
    """M embedding sets over F fields, stored as one (sum of vocab sizes, M*d) table.

    Field f's ids are shifted by the sum of the earlier fields' vocabulary sizes, so every set and
    field is served by a single lookup.
    """

    def __init__(self, *, vocab_sizes: tuple[int, ...], num_sets: int, dim: int, init_std: float = 1e-2):
        super().__init__()
        self.num_sets, self.dim, self.num_fields, self.init_std = num_sets, dim, len(vocab_sizes), init_std
        self.vocab_sizes = tuple(vocab_sizes)
        offsets = torch.tensor((0,) + tuple(vocab_sizes[:-1]), dtype=torch.int64).cumsum(0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.weight = nn.Parameter(torch.empty(sum(vocab_sizes), num_sets * dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=self.init_std)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (B, F) -> (M, B, F*d)."""
        rows = F.embedding(features + self.offsets, self.weight)  # (B, F, M*d)
        batch = features.shape[0]
        rows = rows.view(batch, self.num_fields, self.num_sets, self.dim)  # (B, F, M, d)
        return rows.permute(2, 0, 1, 3).reshape(self.num_sets, batch, self.num_fields * self.dim)  # (M, B, F*d)

    def field_rows(self, field: int, set_index: int) -> torch.Tensor:
        """The (vocab of field, d) embedding matrix of one field in one set (a view)."""
        start = sum(self.vocab_sizes[:field])
        return self.weight[start:start + self.vocab_sizes[field], set_index * self.dim:(set_index + 1) * self.dim]


class _RunningStatistics(nn.Module):
    """Batch-norm running statistics of shape (G, 1, H) for G groups (models or domains).

    Running statistics average the first 1/momentum batches equally, then decay with momentum, so
    that they are right after a few steps (a 1-epoch smoke run, a tail domain seen in few batches)
    and follow the weights later; nn.BatchNorm's fixed momentum would start from (0, 1).
    """

    def __init__(self, *, groups: int, width: int, momentum: float):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("running_mean", torch.zeros(groups, 1, width))
        self.register_buffer("running_var", torch.ones(groups, 1, width))
        self.register_buffer("batches_seen", torch.zeros(groups, 1, 1))

    @torch.no_grad()
    def update(self, mean: torch.Tensor, var: torch.Tensor, n: torch.Tensor) -> None:
        """mean, var (G, 1, H) biased batch statistics over n (G, 1, 1) rows; groups with < 2 rows stay."""
        seen = n > 1
        unbiased = var * n / (n - 1).clamp_min(1)  # as nn.BatchNorm1d's running estimate
        m = torch.maximum(torch.full_like(self.batches_seen, self.momentum), 1 / (self.batches_seen + 1))
        self.running_mean.copy_(torch.where(seen, torch.lerp(self.running_mean, mean, m), self.running_mean))
        self.running_var.copy_(torch.where(seen, torch.lerp(self.running_var, unbiased, m), self.running_var))
        self.batches_seen.add_(seen.to(self.batches_seen.dtype))


class ModelNorm(nn.Module):
    """Normalisation of (M, B, H) activations with parameters and statistics of its own per model.

    batch: over the B rows, per model and unit (BatchNorm; running statistics in eval). layer: over
    the H units of each row (LayerNorm) with per-model affine parameters.
    """

    def __init__(self, kind: str, *, num_models: int, width: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        if kind not in NORMS[1:]:
            raise ValueError(f"unknown norm {kind!r}; valid: {list(NORMS[1:])}")
        self.kind, self.eps = kind, eps
        self.weight = nn.Parameter(torch.ones(num_models, 1, width))
        self.bias = nn.Parameter(torch.zeros(num_models, 1, width))
        self.stats = _RunningStatistics(groups=num_models, width=width, momentum=momentum) if kind == "batch" else None

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, B, H) -> (M, B, H)."""
        if self.stats is None:
            return torch.addcmul(self.bias, F.layer_norm(x, x.shape[-1:], eps=self.eps), self.weight)
        if self.training:
            var, mean = torch.var_mean(x, dim=1, correction=0, keepdim=True)  # (M, 1, H)
            self.stats.update(mean, var, torch.full_like(mean[..., :1], x.shape[1]))
        else:
            mean, var = self.stats.running_mean, self.stats.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)  # (M, 1, H)
        return torch.addcmul(self.bias - mean * scale, x, scale)  # one pass over x


class DomainNorm(nn.Module):
    """Normalisation of (B, H) rows with parameters and batch statistics of each row's own domain.

    batch: per domain and unit over that domain's rows only (a domain absent from the batch leaves
    its running statistics alone). layer: per row, with the domain's affine parameters.
    shared_affine: STAR's partitioned normalisation, whose scale is shared * domain's and whose
    shift is shared + domain's (Sheng et al. 2021, eq. 2).
    """

    def __init__(self, kind: str, *, num_domains: int, width: int, momentum: float = 0.1, eps: float = 1e-5,
                 shared_affine: bool = False):
        super().__init__()
        if kind not in NORMS[1:]:
            raise ValueError(f"unknown norm {kind!r}; valid: {list(NORMS[1:])}")
        self.kind, self.eps, self.num_domains = kind, eps, num_domains
        self.weight = nn.Parameter(torch.ones(num_domains, width))
        self.bias = nn.Parameter(torch.zeros(num_domains, width))
        self.shared_weight = nn.Parameter(torch.ones(width)) if shared_affine else None
        self.shared_bias = nn.Parameter(torch.zeros(width)) if shared_affine else None
        self.stats = _RunningStatistics(groups=num_domains, width=width, momentum=momentum) if kind == "batch" \
            else None

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        if self.shared_weight is not None:
            nn.init.ones_(self.shared_weight)
            nn.init.zeros_(self.shared_bias)

    def affine(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each domain's scale and shift, (S, H) each."""
        if self.shared_weight is None:
            return self.weight, self.bias
        return self.shared_weight * self.weight, self.shared_bias + self.bias

    def forward(self, x: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """x (B, H), domains (B,) -> (B, H)."""
        # Per-domain values reach the rows through one-hot matmuls, not indexing: the backward of
        # an index is an unordered scatter-add on CPU, which made repeated runs differ.
        onehot = F.one_hot(domains, self.num_domains).to(x.dtype)  # (B, S)
        weight, bias = self.affine()  # (S, H)
        if self.stats is None:
            return torch.addcmul(onehot @ bias, F.layer_norm(x, x.shape[-1:], eps=self.eps), onehot @ weight)
        if self.training:
            n = onehot.sum(0).unsqueeze(-1)  # (S, 1)
            mean = onehot.t() @ x / n.clamp_min(1)  # (S, H)
            var = (onehot.t() @ x.square() / n.clamp_min(1) - mean.square()).clamp_min(0)  # (S, H), biased
            self.stats.update(mean.unsqueeze(1), var.unsqueeze(1), n.unsqueeze(1))
        else:
            mean, var = self.stats.running_mean.squeeze(1), self.stats.running_var.squeeze(1)  # (S, H)
        scale = weight * torch.rsqrt(var + self.eps)  # (S, H)
        return torch.addcmul(onehot @ (bias - mean * scale), x, onehot @ scale)


class BatchedLinear(nn.Module):
    """M independent Linear layers as one batched matmul, nn.Linear's default init per model."""

    def __init__(self, *, num_models: int, in_dim: int, out_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_models, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(num_models, 1, out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, B, in) -> (M, B, out)."""
        return torch.baddbmm(self.bias, x, self.weight)


class BatchedMLP(nn.Module):
    """M independent MLPs evaluated together: per hidden width Linear -> norm -> ReLU -> dropout,
    then a plain Linear to out_dim when it is given, else the last hidden layer is the output
    (experts)."""

    def __init__(self, *, num_models: int, in_dim: int, hidden: tuple[int, ...], out_dim: int | None = None,
                 norm: str = "none", dropout: float = 0.0):
        super().__init__()
        self.linears = nn.ModuleList()
        self.norms = nn.ModuleList()
        for fan_in, fan_out in zip((in_dim,) + hidden[:-1], hidden):
            self.linears.append(BatchedLinear(num_models=num_models, in_dim=fan_in, out_dim=fan_out))
            self.norms.append(ModelNorm(norm, num_models=num_models, width=fan_out) if norm != "none" else nn.Identity())
        self.out = None
        if out_dim is not None:
            self.out = BatchedLinear(num_models=num_models, in_dim=hidden[-1] if hidden else in_dim, out_dim=out_dim)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (M, B, in) -> (M, B, out_dim or hidden[-1])."""
        for linear, norm in zip(self.linears, self.norms):
            x = self.dropout(torch.relu(norm(linear(x))))  # (M, B, H)
        return self.out(x) if self.out is not None else x


class BatchedGate(nn.Module):
    """G softmax gates over k experts each: Linear -> norm of the logits -> softmax, as Crocodile's
    gates (their logits are normalised too). x (G, B, in) -> (G, B, k) weights summing to 1."""

    def __init__(self, *, num_gates: int, in_dim: int, num_experts: int, norm: str = "none"):
        super().__init__()
        self.linear = BatchedLinear(num_models=num_gates, in_dim=in_dim, out_dim=num_experts)
        self.norm = ModelNorm(norm, num_models=num_gates, width=num_experts) if norm != "none" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x)).softmax(dim=-1)


def grouped_inputs(per_domain: torch.Tensor, shared: torch.Tensor, specific: int, num_shared: int) -> torch.Tensor:
    """Inputs of S groups of `specific` experts and `num_shared` shared ones (PLE, STEM):
    per_domain (S, B, in) and shared (1, B, in) -> (S*specific + num_shared, B, in), group t
    reading per_domain[t]. Built by expand and cat, whose backward sums (no index scatter)."""
    groups = per_domain.unsqueeze(1).expand(-1, specific, -1, -1).flatten(0, 1)  # (S*k, B, in)
    return torch.cat([groups, shared.expand(num_shared, -1, -1)])


def own_domain(per_domain: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """Each row's own domain's value: per_domain (S, B, ...) and domains (B,) -> (B, ...)."""
    index = domains.view(1, -1, *([1] * (per_domain.dim() - 2)))  # (1, B, 1...)
    return per_domain.gather(0, index.expand(1, *per_domain.shape[1:])).squeeze(0)


# On CPU, rows grouped by domain beat computing every domain's block from this output width on
# (benchmarks/throughput.py; Crocodile's PEG gate, 48 -> 5*64 per domain: 14 ms vs 57 ms a step).
GROUPED_MIN_OUT = 16


def per_domain_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """Row b times its own domain's affine map: x (B, in), weight (in, S, out), bias (S, out) -> (B, out).

    On a GPU, compiled, or under vmap (stacked seeds): all S maps run as one (B, in) x (in, S*out)
    matmul and each row keeps its own block, with static shapes and no host synchronisation. On CPU,
    for wide outputs, rows are grouped by domain instead (S matmuls on the domain's rows only): a
    CPU has no graph to capture and no host to wait for, and it saves S-1 of S blocks of work.
    Both are deterministic: every gather and scatter below touches each position once.
    """
    if bias.shape[1] >= GROUPED_MIN_OUT and _eager_on_cpu(x):
        return grouped_linear(x, weight, bias, domains)
    return every_domain_linear(x, weight, bias, domains)


def every_domain_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """per_domain_linear with static shapes: every domain's block for every row, then each row's own."""
    num_domains, out_dim = bias.shape
    every = torch.addmm(bias.flatten(), x, weight.flatten(1)).view(-1, num_domains, out_dim)  # (B, S, out)
    return every.gather(1, domains.view(-1, 1, 1).expand(-1, 1, out_dim)).squeeze(1)  # (B, out)


def _eager_on_cpu(x: torch.Tensor) -> bool:
    """Plain eager CPU execution: not traced by torch.compile, not a batched tensor of torch.func.vmap
    (functorch's own test: torch has no public one)."""
    return (x.device.type == "cpu" and not torch.compiler.is_compiling()
            and not torch._C._functorch.is_batchedtensor(x))


def grouped_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
    """per_domain_linear with rows grouped by domain: one addmm per domain on its rows only."""
    order = torch.argsort(domains, stable=True)  # (B,) rows sorted by domain
    counts = torch.bincount(domains, minlength=bias.shape[0]).tolist()  # a host read: free on CPU
    groups = x.index_select(0, order).split(counts)  # S pieces (B_s, in)
    out = torch.cat([torch.addmm(bias[s], rows, weight[:, s]) for s, rows in enumerate(groups)])  # (B, out), sorted
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(order.numel(), device=order.device)
    return out.index_select(0, inverse)  # (B, out) back in row order


class PerDomainLinear(nn.Module):
    """One Linear layer per domain, applied to each row with its own domain's weights
    (per_domain_linear: every domain's block and a gather, or rows grouped by domain on CPU)."""

    def __init__(self, *, num_domains: int, in_dim: int, out_dim: int):
        super().__init__()
        self.num_domains, self.out_dim = num_domains, out_dim
        self.weight = nn.Parameter(torch.empty(in_dim, num_domains, out_dim))
        self.bias = nn.Parameter(torch.empty(num_domains, out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[0])  # nn.Linear's default init, per domain
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """x (B, in), domains (B,) -> (B, out)."""
        return per_domain_linear(x, self.weight, self.bias, domains)


class StarLinear(nn.Module):
    """STAR's star-topology layer (Sheng et al. 2021, eq. 3): domain s uses the weight
    W_shared * W_s (element-wise) and the bias b_shared + b_s.

    Init (the paper leaves it open): the shared part as nn.Linear, every domain's part 1 and 0, so
    all domains start from the same layer and learn their factors from there.
    """

    def __init__(self, *, num_domains: int, in_dim: int, out_dim: int):
        super().__init__()
        self.shared_weight = nn.Parameter(torch.empty(in_dim, 1, out_dim))
        self.shared_bias = nn.Parameter(torch.empty(1, out_dim))
        self.weight = nn.Parameter(torch.empty(in_dim, num_domains, out_dim))
        self.bias = nn.Parameter(torch.empty(num_domains, out_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[0])
        nn.init.uniform_(self.shared_weight, -bound, bound)
        nn.init.uniform_(self.shared_bias, -bound, bound)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every domain's weight (in, S, out) and bias (S, out)."""
        return self.shared_weight * self.weight, self.shared_bias + self.bias

    def forward(self, x: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """x (B, in), domains (B,) -> (B, out)."""
        weight, bias = self.effective()
        return per_domain_linear(x, weight, bias, domains)


class PerDomainMLP(nn.Module):
    """One MLP per domain (towers, domain gates): per hidden width PerDomainLinear -> norm -> ReLU
    -> dropout, then a PerDomainLinear to out_dim (normalised too when norm_output, for gates)."""

    def __init__(self, *, num_domains: int, in_dim: int, hidden: tuple[int, ...], out_dim: int,
                 norm: str = "none", dropout: float = 0.0, norm_output: bool = False):
        super().__init__()
        self.num_domains = num_domains
        widths = (in_dim,) + hidden
        self.linears = nn.ModuleList(PerDomainLinear(num_domains=num_domains, in_dim=a, out_dim=b)
                                     for a, b in zip(widths[:-1], widths[1:]))
        self.norms = nn.ModuleList(DomainNorm(norm, num_domains=num_domains, width=w) for w in hidden) \
            if norm != "none" else None
        self.out = PerDomainLinear(num_domains=num_domains, in_dim=widths[-1], out_dim=out_dim)
        self.output_norm = DomainNorm(norm, num_domains=num_domains, width=out_dim) \
            if norm_output and norm != "none" else None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, domains: torch.Tensor) -> torch.Tensor:
        """x (B, in), domains (B,) -> (B, out)."""
        for i, linear in enumerate(self.linears):
            x = linear(x, domains)  # (B, H)
            if self.norms is not None:
                x = self.norms[i](x, domains)
            x = self.dropout(torch.relu(x))
        x = self.out(x, domains)  # (B, out)
        return self.output_norm(x, domains) if self.output_norm is not None else x
