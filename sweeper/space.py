"""Search-space files (search_spaces/*.yaml): schema, validation, expansion into variants.

Three kinds of study share one format:
  replicate: a list of named variants, each run for every seed (the paper's tables);
  search:    Optuna over `search.params`, each sampled configuration run for seeds_per_trial seeds;
  tuned:     a replicate whose rows first get the same declared tuning budget (`tuning:`, each
             row's `tune:` grid) on the validation split; see sweeper.tuned.
Every problem is reported as one SpaceError naming the file and the key, before Ray starts.
`hypotheses:` declares the primary claims (see sweeper.hypotheses); `reference:` declares the other
comparisons; `seed_test:` picks the test over seeds (paired on common seeds by default, or welch).
"""
from __future__ import annotations

import hashlib
import importlib.resources
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from model.config import MEASUREMENT_KEYS, RunConfig, config_keys
from sweeper import hypotheses as hyp
from sweeper.stats import SEED_TESTS

STUDIES = ("replicate", "search", "tuned")
LAYOUTS = ("rows", "alpha", "num_embeddings", "search")
PARAM_TYPES = ("loguniform", "uniform", "int", "choice")
TOP_KEYS = {"name", "description", "study", "table", "layout", "data", "seeds", "metrics", "base", "resources",
            "variants", "reference", "published", "search", "profiles", "base_from", "dataset", "hypotheses",
            "seed_test", "keep_models", "tuning"}
VARIANT_KEYS = {"name", "set", "grid", "series", "x", "reference", "tune"}
TUNING_KEYS = {"budget", "seeds", "metric", "mode"}
RESOURCE_KEYS = {"workers", "cpus_per_worker", "gpus_per_worker", "max_concurrent", "seed_batch"}
SEARCH_KEYS = {"metric", "mode", "num_trials", "max_concurrent", "seeds_per_trial", "params", "asha", "sampler_seed"}
ASHA_KEYS = {"enabled", "grace_period", "reduction_factor"}
PROFILE_KEYS = {"data", "seeds", "base", "search", "resources", "keep_models", "tuning"}
BASE_FROM_KEYS = {"sweep", "top_k", "storage"}


class SpaceError(ValueError):
    """A space file problem: `file: key: what was wrong`."""


@dataclass(frozen=True)
class Resources:
    workers: int = 0  # 0: the Tune trial trains in-process; >= 1: a Ray Train TorchTrainer with DDP
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0  # fractions such as 0.25 pack several trials on one GPU
    max_concurrent: int = 0  # 0: as many as the cluster's resources allow
    seed_batch: int = 1  # replicate trials: up to this many seeds of a variant train as one stacked model


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    low: float | None = None
    high: float | None = None
    values: tuple = ()


@dataclass(frozen=True)
class Search:
    metric: str = "val_auc_overall"
    mode: str = "max"
    num_trials: int = 20
    max_concurrent: int = 2
    seeds_per_trial: int = 1
    params: tuple[Param, ...] = ()
    asha: bool = False
    grace_period: int = 1
    reduction_factor: int = 2
    sampler_seed: int = 0


@dataclass(frozen=True)
class Variant:
    name: str
    factors: dict  # flat config overrides on top of the space's base
    series: str | None = None
    x: float | None = None
    reference: str | None = None
    tune: dict = field(default_factory=dict)  # tuned study: config key -> the values to try

    def points(self) -> list[dict]:
        """The tune grid's configurations in declaration order ([{}] when the row is not tuned)."""
        return [dict(zip(self.tune, combo)) for combo in itertools.product(*self.tune.values())]


@dataclass(frozen=True)
class Tuning:
    """A tuned study's budget: `budget` configurations per tuned row, each run on every tuning
    seed, chosen by the mean of a validation metric."""

    budget: int
    seeds: tuple[int, ...]
    metric: str = "val_auc_overall"
    mode: str = "max"


@dataclass(frozen=True)
class BaseFrom:
    sweep: str
    top_k: int = 1
    storage: str | None = None


@dataclass(frozen=True)
class Space:
    path: str
    name: str
    study: str
    table: str
    layout: str
    data: str
    dataset: str | None
    seeds: tuple[int, ...]
    metrics: tuple[str, ...]
    base: dict
    resources: Resources
    variants: tuple[Variant, ...] = ()
    published: dict = field(default_factory=dict)
    search: Search | None = None
    base_from: BaseFrom | None = None
    reference: str | None = None  # the file's default reference (also for base_from's variants)
    hypotheses: tuple[hyp.Hypothesis, ...] = ()  # `reference: all` still unresolved (base_from adds variants)
    seed_test: str = "paired"
    keep_models: bool = True  # store each finished (cell, seed)'s best-epoch weights under models/
    tuning: Tuning | None = None  # tuned studies only

    def comparisons(self) -> list[dict]:
        """(variant, reference) pairs, fixed by the file before any result exists."""
        return [{"variant": v.name, "reference": v.reference} for v in self.variants if v.reference]

    def hypothesis_records(self) -> list[dict]:
        """The declared hypotheses for sweep.json, `all` resolved against the final variants."""
        names = [v.name for v in self.variants]

        def fail(key: str, problem: str):
            raise SpaceError(f"{self.path}: {key}: {problem}")
        for i, h in enumerate(self.hypotheses):  # base_from may have found fewer than top_k configurations
            hyp.check_names(h, f"hypotheses[{i}]", names, fail)
        return [h.resolved(names).record() for h in self.hypotheses]


def find_space(name_or_path: str) -> Path:
    """A path as given, else (for a bare name such as table5_ablation) a shipped space file.

    Anything that looks like a path (a folder separator or ~) must exist: a typo in a path never
    silently runs the shipped file of the same name."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped_dir = importlib.resources.files("search_spaces")
    available = sorted(p.name for p in shipped_dir.iterdir() if p.name.endswith(".yaml"))
    if "/" in name_or_path or "\\" in name_or_path or name_or_path.startswith("~"):
        raise SpaceError(f"space file {name_or_path!r} does not exist (a bare name such as table5_ablation "
                         f"picks a shipped space: {available})")
    shipped = shipped_dir / (path.stem + ".yaml")
    if path.suffix in ("", ".yaml", ".yml") and shipped.is_file():
        return Path(str(shipped))
    raise SpaceError(f"space file {name_or_path!r} not found (shipped spaces: {available})")


def load_space(name_or_path: str, profile: str | None = None) -> Space:
    path = find_space(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpaceError(f"{path}: not valid YAML: {exc}") from None
    return parse_space(raw, str(path), profile)


def parse_space(raw, where: str, profile: str | None = None) -> Space:
    def fail(key: str, problem: str):
        raise SpaceError(f"{where}: {key}: {problem}")

    if not isinstance(raw, dict):
        fail("<top>", f"expected a mapping, got {type(raw).__name__}")
    _check_keys(raw, TOP_KEYS, "<top>", fail)
    if profile is not None:
        profiles = raw.get("profiles") or {}
        if profile not in profiles:
            fail("profiles", f"no profile {profile!r}; defined: {sorted(profiles)}")
        _check_keys(profiles[profile], PROFILE_KEYS, f"profiles.{profile}", fail)
        raw = _apply_profile(raw, profiles[profile])

    study = raw.get("study", "replicate")
    if study not in STUDIES:
        fail("study", f"must be one of {STUDIES}, got {study!r}")
    name = _typed(raw, "name", str, fail, default=Path(where).stem)
    seeds = raw.get("seeds", [0, 1, 2, 3, 4, 5])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        fail("seeds", f"must be a non-empty list of non-negative integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        fail("seeds", f"has duplicates: {seeds}")
    metrics = raw.get("metrics", ["auc", "gauc"])
    if not isinstance(metrics, list) or not metrics or not set(metrics) <= {"auc", "gauc", "logloss"}:
        fail("metrics", f"must be a non-empty list from [auc, gauc, logloss], got {metrics!r}")
    base = raw.get("base") or {}
    if not isinstance(base, dict):
        fail("base", f"must be a mapping of config keys, got {type(base).__name__}")
    _check_config(base, "base", fail)
    resources = _resources(raw.get("resources") or {}, fail)
    if resources.seed_batch > 1 and study == "search":
        fail("resources.seed_batch", f"is {resources.seed_batch}, but a search trial's seeds run one after another; "
                                     f"seed batching is for replicate and tuned studies")
    layout = raw.get("layout", "search" if study == "search" else "rows")
    if layout not in LAYOUTS:
        fail("layout", f"must be one of {LAYOUTS}, got {layout!r}")
    data = _typed(raw, "data", str, fail, default="synthetic:small")
    published = raw.get("published") or {}
    if not isinstance(published, dict):
        fail("published", "must map variant names to method names of published_results.csv")

    seed_test = raw.get("seed_test", "paired")
    if seed_test not in SEED_TESTS:
        fail("seed_test", f"must be one of {sorted(SEED_TESTS)}, got {seed_test!r}")
    variants, search, base_from, tuning = (), None, None, None
    if study == "tuned":
        tuning = _tuning(raw.get("tuning"), seeds, fail)
    elif raw.get("tuning") is not None:
        fail("tuning", f"only a tuned study has a tuning budget; this study is {study!r}")
    if study in ("replicate", "tuned"):
        variants = _variants(raw, base, fail, tuning)
        if study == "tuned" and raw.get("base_from") is not None:
            fail("base_from", "a tuned study tunes its own rows; base_from replicates a search's best instead")
        if study == "tuned" and not any(v.tune for v in variants):
            fail("variants", "a tuned study needs at least one row with a `tune:` grid")
        if raw.get("base_from") is not None:
            bf = raw["base_from"]
            if not isinstance(bf, dict):
                fail("base_from", "must be a mapping with key 'sweep'")
            _check_keys(bf, BASE_FROM_KEYS, "base_from", fail)
            if not isinstance(bf.get("sweep"), str):
                fail("base_from.sweep", "must name the search sweep whose best configurations to replicate")
            top_k = bf.get("top_k", 1)
            if not isinstance(top_k, int) or top_k < 1:
                fail("base_from.top_k", f"must be an integer >= 1, got {top_k!r}")
            base_from = BaseFrom(sweep=bf["sweep"], top_k=top_k, storage=bf.get("storage"))
        elif not variants:
            fail("variants", "a replicate study needs at least one variant (or base_from)")
        for vname in published:
            if vname not in {v.name for v in variants}:
                fail(f"published.{vname}", f"is not a variant of this file; variants: {[v.name for v in variants]}")
    else:
        if raw.get("variants"):
            fail("variants", "a search study samples its configurations; use search.params instead")
        search = _search(raw.get("search"), fail)
        if search.seeds_per_trial > len(seeds):
            fail("search.seeds_per_trial", f"is {search.seeds_per_trial} but only {len(seeds)} seeds are listed")
        if raw.get("hypotheses"):
            fail("hypotheses", "a search is exploratory and tests nothing; declare hypotheses in the replicate "
                               "that follows it (base_from), or write `hypotheses: []`")
    declared = _hypotheses(raw, variants, base_from, metrics, data, fail)
    keep_models = raw.get("keep_models", True)
    if not isinstance(keep_models, bool):
        fail("keep_models", f"must be true or false, got {keep_models!r}")
    return Space(path=where, name=name, study=study, table=_typed(raw, "table", str, fail, default=name),
                 layout=layout, data=data, dataset=raw.get("dataset"), seeds=tuple(seeds), metrics=tuple(metrics),
                 base=base, resources=resources, variants=variants, published=published, search=search,
                 base_from=base_from, reference=raw.get("reference"), hypotheses=declared, seed_test=seed_test,
                 keep_models=keep_models, tuning=tuning)


def _hypotheses(raw: dict, variants: tuple[Variant, ...], base_from: BaseFrom | None, metrics: list,
                data: str, fail) -> tuple[hyp.Hypothesis, ...]:
    """`hypotheses:` entries, each expanded over its `grid` like a variant, names checked."""
    entries = raw.get("hypotheses") or []
    if not isinstance(entries, list):
        fail("hypotheses", f"must be a list of {{variant, reference, metrics, domain}} mappings, got {entries!r}")
    names = [v.name for v in variants]
    if base_from is not None:  # best-1 .. best-k exist once the search is read, at run time
        names = [f"best-{k}" for k in range(1, base_from.top_k + 1)] + names
    domains = None
    if data.split(":", 1)[0] == "synthetic":
        from model.datasets.synthetic import DOMAIN_NAMES
        domains = ("overall", *DOMAIN_NAMES)
    out, wheres = [], []
    for i, entry in enumerate(entries):
        where = f"hypotheses[{i}]"
        if not isinstance(entry, dict):
            fail(where, f"expected a mapping like {{variant: A, reference: B}}, got {entry!r}")
        grid = entry.get("grid") or {}
        if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
            fail(f"{where}.grid", f"must map grid keys to non-empty lists, got {grid!r}")
        for combo in itertools.product(*grid.values()) if grid else [()]:
            point = dict(zip(grid, combo))
            try:
                expanded = {k: (v.format(**point) if isinstance(v, str) else v)
                            for k, v in entry.items() if k != "grid"}
            except (KeyError, IndexError) as exc:
                fail(where, f"refers to {exc} which is not a key of its grid")
            hypothesis = hyp.parse(expanded, where, names, metrics, fail, extra_keys=("grid",))
            if domains is not None and hypothesis.domain not in domains:
                fail(f"{where}.domain", f"{hypothesis.domain!r} is not a domain of {data}; domains: {list(domains)}")
            out.append(hypothesis)
            wheres.append(where)
    hyp.check_unique([h.resolved(names) for h in out], wheres, fail)
    return tuple(out)


def _apply_profile(raw: dict, profile: dict) -> dict:
    out = dict(raw)
    for key, value in profile.items():
        if key in ("base", "search", "resources", "tuning") and isinstance(value, dict):
            out[key] = {**(raw.get(key) or {}), **value}
        else:
            out[key] = value
    return out


def _check_keys(mapping, allowed: set, where: str, fail):
    if not isinstance(mapping, dict):
        fail(where, f"expected a mapping, got {type(mapping).__name__}")
    for key in mapping:
        if key not in allowed:
            fail(f"{where}.{key}" if where != "<top>" else str(key), f"unknown key; valid keys: {sorted(allowed)}")


def _typed(raw: dict, key: str, kind, fail, default):
    value = raw.get(key, default)
    if not isinstance(value, kind):
        fail(key, f"must be {kind.__name__}, got {value!r}")
    return value


def _check_config(values: dict, where: str, fail) -> None:
    try:
        RunConfig().with_overrides(values)
    except ValueError as exc:
        fail(where, str(exc))


def _resources(raw: dict, fail) -> Resources:
    _check_keys(raw, RESOURCE_KEYS, "resources", fail)
    out = Resources(**{k: raw[k] for k in raw})
    if not isinstance(out.workers, int) or out.workers < 0:
        fail("resources.workers", f"must be an integer >= 0, got {out.workers!r}")
    for key in ("cpus_per_worker", "gpus_per_worker"):
        value = getattr(out, key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            fail(f"resources.{key}", f"must be a number >= 0, got {value!r}")
    if out.cpus_per_worker <= 0:
        fail("resources.cpus_per_worker", f"must be > 0 (Ray rejects a 0-CPU trial), got {out.cpus_per_worker!r}")
    if out.gpus_per_worker > 1 and out.gpus_per_worker != int(out.gpus_per_worker):
        fail("resources.gpus_per_worker", f"above 1 must be a whole number, got {out.gpus_per_worker!r}")
    if not isinstance(out.max_concurrent, int) or out.max_concurrent < 0:
        fail("resources.max_concurrent", f"must be an integer >= 0, got {out.max_concurrent!r}")
    if not isinstance(out.seed_batch, int) or isinstance(out.seed_batch, bool) or out.seed_batch < 1:
        fail("resources.seed_batch", f"must be an integer >= 1, got {out.seed_batch!r}")
    if out.seed_batch > 1 and out.workers > 0:
        fail("resources.seed_batch", f"is {out.seed_batch}, but seed batching runs in-process: it needs workers: 0 "
                                     f"(DDP trials train one seed at a time), got workers: {out.workers}")
    return out


def _tuning(raw, seeds: list[int], fail) -> Tuning:
    if not isinstance(raw, dict):
        fail("tuning", "a tuned study needs a `tuning:` mapping with budget and seeds")
    _check_keys(raw, TUNING_KEYS, "tuning", fail)
    budget = raw.get("budget")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        fail("tuning.budget", f"must be an integer >= 1 (configurations per tuned row), got {budget!r}")
    tuning_seeds = raw.get("seeds")
    if not isinstance(tuning_seeds, list) or not tuning_seeds or \
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in tuning_seeds):
        fail("tuning.seeds", f"must be a non-empty list of non-negative integers, got {tuning_seeds!r}")
    if len(set(tuning_seeds)) != len(tuning_seeds):
        fail("tuning.seeds", f"has duplicates: {tuning_seeds}")
    shared = sorted(set(tuning_seeds) & set(seeds))
    if shared:
        fail("tuning.seeds", f"must be disjoint from the replicate seeds {seeds}, but both have {shared}")
    out = Tuning(budget=budget, seeds=tuple(tuning_seeds), metric=raw.get("metric", "val_auc_overall"),
                 mode=raw.get("mode", "max"))
    if not isinstance(out.metric, str) or not out.metric.startswith("val_"):
        fail("tuning.metric", f"must be a validation metric val_..., got {out.metric!r} (never tune on test)")
    if out.mode not in ("max", "min"):
        fail("tuning.mode", f"must be max or min, got {out.mode!r}")
    return out


def _tune_grid(entry: dict, where: str, base: dict, factors: dict, tuning: Tuning | None, fail) -> dict:
    """A variant's `tune:` grid, checked against the study and the budget."""
    tune = entry.get("tune")
    if tune is None:
        return {}
    if tuning is None:
        fail(f"{where}.tune", "only the rows of a tuned study (study: tuned) are tuned")
    if not isinstance(tune, dict) or not tune:
        fail(f"{where}.tune", f"must map config keys to lists of values, got {tune!r}")
    for key, values in tune.items():
        if not isinstance(values, list) or not values:
            fail(f"{where}.tune.{key}", f"must be a non-empty list, got {values!r}")
        if key in factors:
            fail(f"{where}.tune.{key}", f"is also set by the variant ({key}={factors[key]!r}); tune it or set it")
    size = math.prod(len(v) for v in tune.values())
    if size != tuning.budget:
        fail(f"{where}.tune", f"has {size} configurations, but every tuned row gets the same budget "
                              f"tuning.budget={tuning.budget}")
    for combo in itertools.product(*tune.values()):
        _check_config({**base, **factors, **dict(zip(tune, combo))}, f"{where}.tune", fail)
    return tune


def _variants(raw: dict, base: dict, fail, tuning: Tuning | None = None) -> tuple[Variant, ...]:
    entries = raw.get("variants") or []
    if not isinstance(entries, list):
        fail("variants", f"must be a list, got {type(entries).__name__}")
    variants: list[Variant] = []
    default_reference = raw.get("reference")
    for i, entry in enumerate(entries):
        where = f"variants[{i}]"
        _check_keys(entry, VARIANT_KEYS, where, fail)
        if not isinstance(entry.get("name"), str) or not entry["name"]:
            fail(f"{where}.name", "a variant needs a non-empty name")
        settings = entry.get("set") or {}
        if not isinstance(settings, dict):
            fail(f"{where}.set", "must be a mapping of config keys")
        grid = entry.get("grid") or {}
        if not isinstance(grid, dict):
            fail(f"{where}.grid", "must map config keys to lists of values")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                fail(f"{where}.grid.{key}", f"must be a non-empty list, got {values!r}")
        x_key = entry.get("x")
        for combo in itertools.product(*grid.values()) if grid else [()]:
            point = dict(zip(grid, combo))
            factors = {**settings, **point}
            _check_config({**base, **factors}, f"{where}.set/grid", fail)
            try:
                name = entry["name"].format(**point)
                reference = entry.get("reference", default_reference)
                reference = reference.format(**point) if isinstance(reference, str) else None
            except (KeyError, IndexError) as exc:
                fail(f"{where}.name", f"refers to {exc} which is not a grid key of this variant")
            if x_key is not None and x_key not in {**base, **factors}:
                fail(f"{where}.x", f"{x_key!r} is not set by this variant or the base")
            x = {**base, **factors}.get(x_key) if x_key else None
            variants.append(Variant(name=name, factors=factors, series=entry.get("series"),
                                    x=float(x) if x is not None else None,
                                    reference=reference if reference != name else None,
                                    tune=_tune_grid(entry, where, base, factors, tuning, fail)))
    names = [v.name for v in variants]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        fail("variants", f"variant names must be unique; repeated: {duplicates}")
    for v in variants:
        if v.reference is not None and v.reference not in names:
            fail("reference", f"variant {v.name!r} compares against {v.reference!r}, which is not a variant; "
                              f"variants: {names}")
    return tuple(variants)


def _search(raw, fail) -> Search:
    if not isinstance(raw, dict):
        fail("search", "a search study needs a `search:` mapping with params")
    _check_keys(raw, SEARCH_KEYS, "search", fail)
    params = []
    raw_params = raw.get("params") or {}
    if not isinstance(raw_params, dict) or not raw_params:
        fail("search.params", "must map config keys to distributions")
    known = set(config_keys())
    for key, spec in raw_params.items():
        where = f"search.params.{key}"
        if key not in known:
            fail(where, f"unknown config key; valid: {sorted(known)}")
        _check_keys(spec, {"type", "low", "high", "values"}, where, fail)
        kind = spec.get("type")
        if kind not in PARAM_TYPES:
            fail(f"{where}.type", f"must be one of {PARAM_TYPES}, got {kind!r}")
        if kind == "choice":
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                fail(f"{where}.values", f"must be a non-empty list, got {values!r}")
            for value in values:
                _check_config({key: value}, f"{where}.values", fail)
            params.append(Param(name=key, kind=kind, values=tuple(values)))
            continue
        low, high = spec.get("low"), spec.get("high")
        for bound_name, bound in (("low", low), ("high", high)):
            if not isinstance(bound, (int, float)) or isinstance(bound, bool) or not math.isfinite(bound):
                fail(f"{where}.{bound_name}", f"must be a number, got {bound!r}")
        if not low < high:
            fail(where, f"needs low < high, got low={low!r}, high={high!r}")
        if kind == "loguniform" and low <= 0:
            fail(f"{where}.low", f"must be > 0 for a log-uniform range, got {low!r}")
        if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
            fail(where, f"an int range needs integer bounds, got low={low!r}, high={high!r}")
        for bound in (low, high):
            _check_config({key: int(bound) if kind == "int" else float(bound)}, where, fail)
        params.append(Param(name=key, kind=kind, low=low, high=high))
    asha = raw.get("asha") or {}
    _check_keys(asha, ASHA_KEYS, "search.asha", fail)
    out = Search(
        metric=raw.get("metric", "val_auc_overall"), mode=raw.get("mode", "max"),
        num_trials=raw.get("num_trials", 20), max_concurrent=raw.get("max_concurrent", 2),
        seeds_per_trial=raw.get("seeds_per_trial", 1), params=tuple(params), asha=bool(asha.get("enabled", False)),
        grace_period=asha.get("grace_period", 1), reduction_factor=asha.get("reduction_factor", 2),
        sampler_seed=raw.get("sampler_seed", 0),
    )
    if out.mode not in ("max", "min"):
        fail("search.mode", f"must be max or min, got {out.mode!r}")
    if not out.metric.startswith("val_"):
        fail("search.metric", f"must be a validation metric val_..., got {out.metric!r} (never tune on test)")
    for key in ("num_trials", "max_concurrent", "seeds_per_trial", "grace_period", "reduction_factor"):
        value = getattr(out, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            fail(f"search.{key}", f"must be an integer >= 1, got {value!r}")
    if out.asha and out.seeds_per_trial > 1:
        fail("search.asha", "early stopping needs seeds_per_trial: 1 (ASHA compares single training curves)")
    return out


def cell_key(config: dict) -> str:
    """Hash of a resolved flat config without its seed: one table cell, whatever the seed (and
    whatever it measures: model.config.MEASUREMENT_KEYS are left out)."""
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(config.items())
                if k != "seed" and k not in MEASUREMENT_KEYS}
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ShippedSpace:
    name: str
    description: str
    profiles: tuple[str, ...]


def shipped_spaces() -> list[ShippedSpace]:
    """The spaces shipped in `search_spaces`, each with its one-line description and profiles.

    The description is the file's `description:` key, else its first comment line.
    """
    out = []
    for entry in sorted(importlib.resources.files("search_spaces").iterdir(), key=lambda p: p.name):
        if not entry.name.endswith(".yaml"):
            continue
        text = entry.read_text()
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raw = {}
        comment = next((line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")), "")
        description = str(raw.get("description") or comment)
        out.append(ShippedSpace(name=entry.name[:-len(".yaml")], description=description,
                                profiles=tuple(raw.get("profiles") or ())))
    return out
