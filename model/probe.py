"""The mechanism diagnostics of one run (model/diagnostics.py) on any architecture: what to measure,
fixed once from the data, and one call that measures a model.

`Probe.for_run(data, config=..., rows_per_domain=..., seed=..., device=...)` fixes everything that
depends only on the data: the user and item ids seen in training with their exposure counts, the
ids seen in each domain's training rows, the conflict users of every domain pair (from the train
rows), and a fixed sample of each domain's validation rows. `probe.measure(model)` then returns
(scalars, spectra) with exactly the columns of `diagnostic_columns(domain_names)`, NaN where a
column does not apply (an embedding set or expert the model lacks, a model without experts).

Letters: S domains, M embedding sets (or experts), n rows, d embedding dim, D expert output dim.

Columns (DIAG_CONTRACT.md), for fields user_id and item_id and every domain:
  ia_<field>            mean over the model's embedding sets of IA(seen rows of the field in set p)
  ia_<field>_set<p>     p < MAX_DIAGNOSED_SETS: that set alone
  ia_<field>_<dom>      IA of the rows seen in dom's training rows, in the set(s) dom reads (its own
                        domain-specific set for STEM, ME-PLE and single_domain; every set otherwise),
                        mean over those sets: the tail-domain IA of the paper's Fig. 4
  ia_item_id_freq<g>    IA of exposure-frequency group g (1 = most exposed), mean over sets
  ia_expert<p>_<dom>    IA of expert p's outputs on dom's sampled validation rows; ia_expert_<dom> the
                        mean over all the model's experts
  di_<a>_<b>, di_mean   Diversity Index per domain pair (a before b in domain order), and the mean of
                        the pairs that are not NaN
Spectra (log_spectrum, <= 64 values): <field>_set<p>, <field>_<dom> (the mean over dom's sets of
their log spectra), expert<p>_<dom>.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

import torch

from model.architectures import ModelConfig
from model.data import MultiDomainData
from model.diagnostics import (FREQUENCY_GROUPS, conflict_users_by_pair, exposure_counts, gather_diagnostics,
                               sample_rows)

FIELDS = ("user_id", "item_id")  # the id fields whose embedding tables are diagnosed
MAX_DIAGNOSED_SETS = 16  # per-set and per-expert columns p = 0..15 (the mean columns use all of them)
DEFAULT_ROWS = 2048  # validation rows per domain for the expert outputs (TrainConfig.diagnostics_rows)
SAMPLE_SEED = 0  # every run of a sweep measures the same validation rows, whatever its training seed

Layout = Callable[[int, int], tuple[tuple[int, ...], ...]]  # (num_sets, S) -> the sets each domain reads


def every_set(num_sets: int, num_domains: int) -> tuple[tuple[int, ...], ...]:
    """Shared layouts (SE, and ME whose experts every domain mixes): domain s reads every set."""
    return tuple(tuple(range(num_sets)) for _ in range(num_domains))


def own_set(num_sets: int, num_domains: int) -> tuple[tuple[int, ...], ...]:
    """Domain-specific layouts: set s is domain s's table (a shared set S, if any, is not its own)."""
    if num_sets < num_domains:
        raise ValueError(f"a domain-specific embedding layout needs a set per domain ({num_domains}), "
                         f"but the model has {num_sets} sets")
    return tuple((s,) for s in range(num_domains))


# (architecture, embedding) -> which sets of model.embedding each domain reads, for ia_<field>_<dom>.
# STEM and ME-PLE: sets 0..S-1 domain-specific, set S shared; single_domain: S sets, set s domain s's.
LAYOUTS: dict[tuple[str, str], Layout] = {
    ("crocodile", "ME"): every_set, ("crocodile", "SE"): every_set,
    ("mmoe", "SE"): every_set, ("mmoe", "ME"): every_set,
    ("single_domain", "SE"): own_set,
    ("shared_bottom", "SE"): every_set,
    ("ple", "SE"): every_set, ("ple", "ME"): own_set,
    ("stem", "ME"): own_set,
    ("pepnet", "SE"): every_set,
    ("hinet", "SE"): every_set,
    ("star", "SE"): every_set,
    ("adasparse", "SE"): every_set,
}


def layout_of(config: ModelConfig) -> Layout:
    """config's entry of LAYOUTS; a ValueError naming the pair when it has none."""
    key = (config.architecture, config.embedding)
    if key not in LAYOUTS:
        raise ValueError(f"no embedding layout for architecture={config.architecture!r} with "
                         f"embedding={config.embedding!r} in model/probe.py LAYOUTS; it has {sorted(LAYOUTS)}")
    return LAYOUTS[key]


def domain_sets(config: ModelConfig, num_sets: int, num_domains: int) -> tuple[tuple[int, ...], ...]:
    """The embedding sets each domain reads under config's architecture and embedding."""
    return layout_of(config)(num_sets, num_domains)


def domain_pairs(domain_names: tuple[str, ...]) -> list[tuple[str, str]]:
    return list(itertools.combinations(domain_names, 2))


def diagnostic_columns(domain_names: tuple[str, ...]) -> tuple[str, ...]:
    """Every ia_*/di_* column of a results row, fixed by the domain names alone (every row of a sweep
    has them all)."""
    doms, sets = tuple(domain_names), range(MAX_DIAGNOSED_SETS)
    out = []
    for name in FIELDS:
        out += [f"ia_{name}", *(f"ia_{name}_set{p}" for p in sets), *(f"ia_{name}_{d}" for d in doms)]
    out += [f"ia_item_id_freq{g}" for g in range(1, FREQUENCY_GROUPS + 1)]
    for d in doms:
        out += [*(f"ia_expert{p}_{d}" for p in sets), f"ia_expert_{d}"]
    out += [f"di_{a}_{b}" for a, b in domain_pairs(doms)] + ["di_mean"]
    return tuple(out)


@dataclass(frozen=True)
class Probe:
    """What one run's diagnostics measure (see the module docstring); tensors on the run's device.

    seen: field -> sorted ids seen in the train split; exposure: item_id -> their train impressions;
    seen_by_domain: field -> per domain, the ids seen in its train rows; conflicts: (a, b) -> conflict
    user ids (model.diagnostics.conflict_users_by_pair); features/domains/users: per domain, the sampled
    validation rows (n_s, F), (n_s,), (n_s,); layout: per domain, the embedding sets it reads.
    """

    domain_names: tuple[str, ...]
    fields: dict[str, int]
    seen: dict[str, torch.Tensor]
    exposure: dict[str, torch.Tensor]
    seen_by_domain: dict[str, tuple[torch.Tensor, ...]]
    conflicts: dict[tuple[str, str], torch.Tensor]
    features: tuple[torch.Tensor, ...]
    domains: tuple[torch.Tensor, ...]
    users: tuple[torch.Tensor, ...]
    config: ModelConfig

    @classmethod
    @torch.no_grad()
    def for_run(cls, data: MultiDomainData, *, config: ModelConfig, rows_per_domain: int = DEFAULT_ROWS,
                seed: int = SAMPLE_SEED, device: str | torch.device = "cpu") -> "Probe":
        """The probe of a run of config (its model layout) on data; build it once, measure often."""
        if rows_per_domain < 1:
            raise ValueError(f"rows_per_domain must be >= 1, but got rows_per_domain={rows_per_domain}")
        layout_of(config)  # fail before any work for a model without a layout
        device = torch.device(device)
        train, val = data.subset("train"), data.subset("val")
        fields = {name: data.field_names.index(name) for name in FIELDS if name in data.field_names}
        seen, exposure, by_domain = {}, {}, {}
        for name, col in fields.items():
            ids, counts = exposure_counts(train.features[:, col])
            seen[name] = ids.to(device)
            if name == "item_id":
                exposure[name] = counts.cpu()
            by_domain[name] = tuple(torch.unique(train.features[train.domains == s, col]).to(device)
                                    for s in range(data.num_domains))
        conflicts = conflict_users_by_pair(train.users, train.labels, train.domains, data.domain_names)
        rows = sample_rows(val.domains, data.num_domains, rows_per_domain, seed)
        return cls(domain_names=tuple(data.domain_names), fields=fields, seen=seen, exposure=exposure,
                   seen_by_domain=by_domain, conflicts={k: v.cpu() for k, v in conflicts.items()},
                   features=tuple(val.features[r].to(device) for r in rows),
                   domains=tuple(val.domains[r].to(device) for r in rows),
                   users=tuple(val.users[r].cpu() for r in rows), config=config)

    def measure(self, model: torch.nn.Module) -> tuple[dict[str, float], dict[str, list[float]]]:
        """(scalars, spectra) of model: scalars has exactly diagnostic_columns(domain_names), NaN
        where a column does not apply. Runs in eval mode without gradients; the mode is restored."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                tables, groups = self._tables(model)
                outputs = self._expert_outputs(model)
        finally:
            model.train(was_training)
        with_rows = {d: o for d, o in outputs.items() if o.shape[1] > 0}
        counts = self.exposure.get("item_id")
        exposure = None  # frequency groups need at least one item per group
        if counts is not None and len(counts) >= FREQUENCY_GROUPS:
            exposure = {name: counts for name in tables if name.startswith("item_id_set")}
        row_users = {d: self.users[self.domain_names.index(d)] for d in with_rows} if with_rows else None
        raw, raw_spectra = gather_diagnostics(tables, with_rows, row_users=row_users,
                                              conflicts=self.conflicts if with_rows else None, exposure=exposure)
        return self._columns(raw, raw_spectra, groups, outputs)

    # ---- the model's parts ----------------------------------------------------------------------

    def _tables(self, model) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
        """Embedding matrices to diagnose, by internal name, and which of them each per-domain column
        averages: "<field>_set<p>" (seen rows, set p) and "<field>_<dom>~<p>" (dom's seen rows, set p)."""
        emb = model.embedding  # every architecture's MultiEmbedding: set p in columns p*d:(p+1)*d
        weight = emb.weight.detach()
        layout = domain_sets(self.config, emb.num_sets, len(self.domain_names))
        tables, groups = {}, {}
        for name, col in self.fields.items():
            rows = weight[emb.offsets[col] + self.seen[name]]  # (seen, M*d)
            for p in range(emb.num_sets):
                tables[f"{name}_set{p}"] = rows[:, p * emb.dim:(p + 1) * emb.dim]
            for s, dom in enumerate(self.domain_names):
                ids = self.seen_by_domain[name][s]
                if len(ids) == 0:
                    continue
                dom_rows = weight[emb.offsets[col] + ids]  # (seen in dom, M*d)
                groups[f"{name}_{dom}"] = []
                for p in layout[s]:
                    key = f"{name}_{dom}~{p}"
                    tables[key] = dom_rows[:, p * emb.dim:(p + 1) * emb.dim]
                    groups[f"{name}_{dom}"].append(key)
        return tables, groups

    def _expert_outputs(self, model) -> dict[str, torch.Tensor]:
        """domain -> expert outputs (M, n, D) on its sampled validation rows; {} for models without experts."""
        out = {}
        for dom, features, domains in zip(self.domain_names, self.features, self.domains):
            if len(features) == 0:
                continue
            experts = model(features, domains).expert_outputs
            if experts is None:
                return {}
            out[dom] = experts.float()
        return out

    # ---- the contract's columns -----------------------------------------------------------------

    def _columns(self, raw, raw_spectra, groups, outputs):
        doms = self.domain_names
        scalars = dict.fromkeys(diagnostic_columns(doms), math.nan)
        spectra: dict[str, list[float]] = {}
        for name in FIELDS:
            per_set = [raw[k] for k in sorted((k for k in raw if _is_set(k, name)), key=_set_index)]
            scalars[f"ia_{name}"] = _mean(per_set)
            for p, value in enumerate(per_set[:MAX_DIAGNOSED_SETS]):
                scalars[f"ia_{name}_set{p}"] = value
                spectra[f"{name}_set{p}"] = raw_spectra[f"{name}_set{p}"]
            for dom in doms:
                keys = groups.get(f"{name}_{dom}", [])
                if keys:
                    scalars[f"ia_{name}_{dom}"] = _mean([raw[f"ia_{k}"] for k in keys])
                    spectra[f"{name}_{dom}"] = [sum(v) / len(v) for v in zip(*(raw_spectra[k] for k in keys))]
        sets = [k for k in raw if _is_set(k, "item_id")]
        for g in range(1, FREQUENCY_GROUPS + 1):
            scalars[f"ia_item_id_freq{g}"] = _mean([raw[f"{k}_freq{g}"] for k in sets if f"{k}_freq{g}" in raw])
        for dom, o in outputs.items():
            values = [raw[f"ia_expert{p}_{dom}"] for p in range(o.shape[0]) if f"ia_expert{p}_{dom}" in raw]
            scalars[f"ia_expert_{dom}"] = _mean(values)
            for p, value in enumerate(values[:MAX_DIAGNOSED_SETS]):
                scalars[f"ia_expert{p}_{dom}"] = value
                spectra[f"expert{p}_{dom}"] = raw_spectra[f"expert{p}_{dom}"]
        pairs = [f"di_{a}_{b}" for a, b in domain_pairs(doms)]
        for key in pairs:
            scalars[key] = raw.get(key, math.nan)
        scalars["di_mean"] = _mean([scalars[k] for k in pairs])
        return scalars, spectra


def _is_set(key: str, name: str) -> bool:
    """An "ia_<name>_set<p>" scalar of gather_diagnostics (not its _freq<g> ones)."""
    prefix = f"ia_{name}_set"
    return key.startswith(prefix) and key[len(prefix):].isdigit()


def _set_index(key: str) -> int:
    return int(key.rsplit("_set", 1)[1])


def _mean(values: list[float]) -> float:
    """Mean of the values that are not NaN; NaN when none is."""
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan
