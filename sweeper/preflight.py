"""Pre-flight: what the driver can know is wrong before a single trial runs.

  check_names      every monitor and the search objective against the data's own metric names
                   (read from the data's metadata, not its rows), prior fields for pg/peg gating,
                   and that each configuration's model builds for the data's domains and fields;
  concurrency      the trials the cluster can hold at once, from its nodes and the space's
                   resources; raises ResourceError with the arithmetic when not even one fits.

Pure functions of plain values: no Ray here (run.py and tune_runner.py pass the cluster's shape).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from model.config import RunConfig

from model.data import PRIOR_FIELDS
from model.datasets import DataInfo
from sweeper.schema import metric_names
from sweeper.space import Resources, Space, SpaceError

# A Ray Train trial's own CPU share: it only waits on its workers (Ray rejects a 0-CPU trial).
DRIVER_CPU = 0.2
EPS = 1e-9


class ResourceError(SpaceError):
    """The space's resources cannot run on this cluster: the message carries the arithmetic."""


# ---- names -------------------------------------------------------------------------------------

def check_names(space: Space, base: dict, info: DataInfo) -> None:
    """Every monitor (base, overrides, variants, searched values) and the search objective must be
    a validation metric the data has; pg/peg gating needs the prior fields."""
    known = metric_names(info.domain_names, info.has_truth)
    domains = ["overall", *info.domain_names]

    def check(metric: str, where: str) -> None:
        if metric in known and metric.startswith("val_"):
            return
        parts = metric.split("_", 2)
        domain = parts[2] if len(parts) == 3 else "?"
        if domain not in domains:
            raise SpaceError(f"{where}: {metric!r} names domain {domain!r}, which {info.spec} does not have; "
                             f"its domains: {domains}")
        raise SpaceError(f"{where}: {metric!r} is not a validation metric of {info.spec}; "
                         f"e.g. {[m for m in known if m.startswith('val_')][:4]}")

    configs = [(f"variant {v.name!r}", {**base, **v.factors}) for v in space.variants] or [("base", dict(base))]
    if space.search is not None:
        check(space.search.metric, f"{space.path}: search.metric")
        for param in space.search.params:
            if param.kind == "choice":
                configs += [(f"search.params.{param.name}={value!r}", {**base, param.name: value})
                            for value in param.values]
    for where, values in configs:
        config = RunConfig().with_overrides(values)
        check(config.train.monitor, f"{space.path}: {where}: monitor")
        if config.model.uses_prior:
            missing = [f for f in PRIOR_FIELDS if f not in info.field_names]
            if missing:
                raise SpaceError(f"{space.path}: {where}: gating {config.model.gating!r} needs the prior fields "
                                 f"{list(PRIOR_FIELDS)}, but {info.spec} lacks {missing}")
        check_model(config, info, f"{space.path}: {where}")


def check_model(config: RunConfig, info: DataInfo, where: str) -> None:
    """The model must build for the data's domains and fields (e.g. ME with standard gating needs
    num_embeddings >= domains): built once on a 2-id vocabulary, milliseconds, no data read."""
    from model.architectures import build_model

    prior = tuple(info.field_names.index(f) for f in PRIOR_FIELDS) if config.model.uses_prior else ()
    try:
        build_model(config.model, vocab_sizes=(2,) * len(info.field_names), num_domains=len(info.domain_names),
                    prior_fields=prior)
    except ValueError as exc:
        raise SpaceError(f"{where}: on {info.spec} ({len(info.domain_names)} domains): {exc}") from None


# ---- resources ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Node:
    cpu: float
    gpu: float = 0.0


@dataclass(frozen=True)
class ClusterShape:
    nodes: tuple[Node, ...]  # alive now
    may_add: tuple[Node, ...] = ()  # the most an autoscaler may add (launcher clusters)

    @property
    def every(self) -> tuple[Node, ...]:
        return self.nodes + self.may_add

    def describe(self) -> str:
        nodes = self.every
        text = (f"{len(nodes)} node(s), {_n(sum(n.cpu for n in nodes))} CPU and {_n(sum(n.gpu for n in nodes))} GPU "
                f"in all, at most {_n(max((n.cpu for n in nodes), default=0))} CPU / "
                f"{_n(max((n.gpu for n in nodes), default=0))} GPU on one node")
        return text + (f" (with the {len(self.may_add)} node(s) its autoscaler may add)" if self.may_add else "")


def trial_need(resources: Resources) -> str:
    """What one trial asks Ray for, in words (for messages)."""
    worker = f"{_n(resources.cpus_per_worker)} CPU" + (f" + {_n(resources.gpus_per_worker)} GPU"
                                                        if resources.gpus_per_worker else "")
    if resources.workers == 0:
        return f"one trial needs {worker} on one node"
    total = DRIVER_CPU + resources.workers * resources.cpus_per_worker
    return (f"one Ray Train trial needs {_n(DRIVER_CPU)} CPU for its driver + {resources.workers} worker(s) x "
            f"({worker}) = {_n(total)} CPU" + (f" + {_n(resources.workers * resources.gpus_per_worker)} GPU"
                                               if resources.gpus_per_worker else ""))


def max_concurrent(resources: Resources, shape: ClusterShape) -> int:
    """How many trials fit on the cluster at once (0: not even one)."""
    cpu, gpu = resources.cpus_per_worker, resources.gpus_per_worker
    slots = 0  # worker-sized bundles the nodes hold
    for node in shape.every:
        fit = math.floor((node.cpu + EPS) / cpu)
        if gpu > 0:
            fit = min(fit, math.floor((node.gpu + EPS) / gpu))
        slots += max(fit, 0)
    if resources.workers == 0:
        return slots
    total_cpu = sum(n.cpu for n in shape.every)
    # Each trial's driver holds DRIVER_CPU for as long as it runs: drivers and workers together must
    # fit, or drivers take the CPUs their workers wait for (the deadlock of 6 drivers on 2 CPUs).
    by_cpu = math.floor((total_cpu + EPS) / (DRIVER_CPU + resources.workers * cpu))
    return min(slots // resources.workers, by_cpu)


def concurrency(resources: Resources, shape: ClusterShape, requested: int = 0) -> int:
    """The concurrency cap to run with: what fits, and at most `requested` (0: no request)."""
    fits = max_concurrent(resources, shape)
    if fits == 0:
        hint = ("lower resources.cpus_per_worker / gpus_per_worker or resources.workers"
                if resources.workers else "lower resources.cpus_per_worker / gpus_per_worker")
        raise ResourceError(f"resources: {trial_need(resources)}, but the cluster has {shape.describe()}: "
                            f"no trial can ever start; {hint}, or add nodes")
    return min(fits, requested) if requested else fits


def autoscaler_nodes(config_path: Path = Path("~/ray_bootstrap_config.yaml")) -> tuple[Node, ...]:
    """The most nodes the launcher's autoscaler may add (its config on the head; none elsewhere)."""
    path = config_path.expanduser()
    if not path.is_file():
        return ()
    import yaml

    try:
        config = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return ()
    head = config.get("head_node_type")
    out = []
    for name, node_type in (config.get("available_node_types") or {}).items():
        if name == head:
            continue
        res = node_type.get("resources") or {}
        out += [Node(float(res.get("CPU", 0)), float(res.get("GPU", 0)))] * int(node_type.get("max_workers", 0))
    return tuple(out)


def _n(x: float) -> str:
    return f"{x:g}"
