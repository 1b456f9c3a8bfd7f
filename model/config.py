"""Run configuration: a model variant plus training settings, and parsing of key=value overrides.

Keys are flat (`alpha=1e-4 lr=3e-3`); each belongs to exactly one of ModelConfig / TrainConfig.
"""
from __future__ import annotations

import json
import re
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from model.architectures import ModelConfig
from model.losses import TASK_LOSSES

METRICS = ("auc", "gauc", "logloss")
# Keys that change what a run measures, not what it trains: a results cell (sweeper/space.py
# cell_key) and a resumable state ignore them, so asking for diagnostics never retrains a cell.
MEASUREMENT_KEYS = frozenset({"diagnostics", "diagnostics_every", "diagnostics_rows"})
LOWER_IS_BETTER = frozenset({"logloss"})


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; defaults follow the paper's lineage (FuxiCTR/STEM)."""

    seed: int = 0
    lr: float = 3e-3  # chosen by search_spaces/training_defaults.yaml (README: "Training defaults")
    batch_size: int = 4096
    eval_batch_size: int = 65536
    epochs: int = 20
    patience: int = 2
    monitor: str = "val_auc_overall"
    embedding_l2: float = 1e-6
    # per_domain: the paper's eq. 7 (each domain's mean BCE, summed); global: one mean over the rows.
    task_loss: str = "per_domain"
    bf16: bool = False
    compile: bool = False
    diagnostics: bool = True  # mechanism diagnostics (model/probe.py) at the best epoch; False: none, columns null
    diagnostics_every: int = 0  # k > 0: also every k-th epoch (IA over epochs); 0: the best epoch only
    diagnostics_rows: int = 2048  # validation rows sampled per domain for the expert outputs

    def __post_init__(self):
        for name in ("batch_size", "eval_batch_size", "epochs", "patience", "diagnostics_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, but got {name}={getattr(self, name)!r}")
        if self.diagnostics_every < 0:
            raise ValueError(f"diagnostics_every must be >= 0, but got diagnostics_every={self.diagnostics_every!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, but got {self.lr=}")
        if not self.embedding_l2 >= 0:
            raise ValueError(f"embedding_l2 must be >= 0, but got {self.embedding_l2=}")
        if self.task_loss not in TASK_LOSSES:
            raise ValueError(f"unknown task_loss {self.task_loss!r}; valid: {sorted(TASK_LOSSES)}")
        if not re.fullmatch(rf"val_({'|'.join(METRICS)})_\w+", self.monitor):
            raise ValueError(f"monitor must look like val_{{{'|'.join(METRICS)}}}_{{domain|overall}}, "
                             f"but got {self.monitor=}")

    @property
    def monitor_mode(self) -> str:
        return "min" if self.monitor.split("_")[1] in LOWER_IS_BETTER else "max"


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def flat(self) -> dict:
        """All settings as one flat dict of plain values (tuples as lists)."""
        return {**asdict(self.model), **asdict(self.train)}

    def with_overrides(self, overrides: dict) -> "RunConfig":
        """A copy with flat keys replaced; values may be strings (parsed by the field's type).

        Changing `architecture` also resets the keys that were at the old architecture's defaults
        to the new one's (ModelConfig.rebased); keys set otherwise must agree with it.

        Raises ValueError naming an unknown key (with the valid ones) or a value of the wrong type.
        """
        model_keys, train_keys = _types(ModelConfig), _types(TrainConfig)
        model_changes, train_changes = {}, {}
        for key, raw in overrides.items():
            if key in model_keys:
                model_changes[key] = parse_value(key, raw, model_keys[key])
            elif key in train_keys:
                train_changes[key] = parse_value(key, raw, train_keys[key])
            else:
                raise ValueError(f"unknown config key {key!r}; valid keys: {sorted(model_keys | train_keys)}")
        # A new architecture first moves the keys left at the old one's defaults to its own (so
        # `architecture=star` alone is STAR, not STAR with Crocodile's CovLoss), in one validation.
        architecture = model_changes.pop("architecture", self.model.architecture)
        model = self.model.rebased(architecture, model_changes) if architecture != self.model.architecture \
            else replace(self.model, **model_changes)
        return RunConfig(model=model, train=replace(self.train, **train_changes))


def config_keys() -> tuple[str, ...]:
    return tuple(f.name for f in fields(ModelConfig)) + tuple(f.name for f in fields(TrainConfig))


def _types(cls) -> dict[str, typing.Any]:
    return typing.get_type_hints(cls)


def parse_value(key: str, raw, kind):
    """Coerce raw (a string from the command line, or a YAML/JSON value) to the field's type."""
    try:
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("true", "1", "yes"):
                return True
            if str(raw).lower() in ("false", "0", "no"):
                return False
            raise ValueError
        if kind is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw) if not isinstance(raw, str) else int(raw.strip())
        if kind is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if kind is str:
            if not isinstance(raw, str):
                raise ValueError
            return raw
        if typing.get_origin(kind) is tuple:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(int(x) for x in items if str(x).strip() != "")
    except (TypeError, ValueError):
        pass
    name = getattr(kind, "__name__", str(kind))
    raise ValueError(f"config key {key!r} expects {name}, but got {raw!r}")


def load_config_file(path: str | Path) -> dict:
    """Flat key -> value mapping from a YAML or JSON file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    text = path.read_text()
    if path.suffix == ".json":
        values = json.loads(text)
    else:
        import yaml

        values = yaml.safe_load(text) or {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping of key: value, got {type(values).__name__}")
    return values
