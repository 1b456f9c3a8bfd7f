"""What survives a run: its per-epoch training state (to resume), and its best model (to reuse).

TrainState is everything `train()` needs to go on after an epoch exactly as if it had never
stopped: model and optimiser state, the shuffle generator, torch's global generator, the
early-stopping state with the best epoch's weights, and the history. A resumed run ends with the
same metrics as an uninterrupted one (tests/model/test_checkpoint.py).

A model artefact is the best epoch's state dict with the resolved config and the data's shape
(vocabulary sizes, domains), enough for `python -m model.train --eval FILE --data SPEC`.
Both are plain dicts of tensors and Python values, saved with torch.save and loaded with
weights_only=True (no pickled code runs on load).
"""
from __future__ import annotations

import io
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import torch

ARTEFACT_FORMAT = "crocodile-model/1"


@dataclass
class TrainState:
    """The state of a run after `epoch` (valid as handed to on_state; save it before training goes on)."""

    epoch: int
    model: dict
    optimizer: dict
    shuffle_rng: torch.Tensor  # the batch-order generator's state
    torch_rng: torch.Tensor  # torch's global generator (anything random in the model, e.g. dropout)
    best_score: float  # sign * monitor of the best epoch (-inf before any)
    best_epoch: int
    best_state: dict | None
    best_val: dict
    train_seconds: float
    train_rows: int
    elapsed_s: float  # wall time of the run so far, over all its attempts
    config: dict  # the flat config of the run: resuming under another config is refused
    history: list[dict] = field(default_factory=list)
    diagnostics_epochs: list[dict] = field(default_factory=list)  # per-epoch diagnostics (diagnostics_every > 0)
    diagnostics_s: float = 0.0  # wall seconds spent on diagnostics so far

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save(asdict(self), buffer)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "TrainState":
        raw = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        names = {f.name for f in fields(cls)}
        # Fields with defaults may be absent: a state saved before they existed still loads.
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        if not isinstance(raw, dict) or not required <= set(raw) <= names:
            raise ValueError(f"not a TrainState: expected keys {sorted(names)}")
        return cls(**raw)

    def save(self, path: str | os.PathLike) -> None:
        _atomic_write(Path(path), self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainState":
        return cls.from_bytes(Path(path).read_bytes())


def artefact_bytes(state_dict: dict, config: dict, *, vocab_sizes, domain_names, field_names, data: str,
                   metrics: dict, epoch: int) -> bytes:
    """A best-epoch model artefact (see the module docstring) as bytes."""
    buffer = io.BytesIO()
    torch.save({"format": ARTEFACT_FORMAT, "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
                "config": dict(config), "vocab_sizes": list(vocab_sizes), "domain_names": list(domain_names),
                "field_names": list(field_names), "data": data, "metrics": dict(metrics), "epoch": int(epoch)},
               buffer)
    return buffer.getvalue()


def load_artefact(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: say which
        raise ValueError(f"{str(path)!r} is not a readable model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict) or raw.get("format") != ARTEFACT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a model artefact of this project (format {ARTEFACT_FORMAT!r})")
    return raw


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
