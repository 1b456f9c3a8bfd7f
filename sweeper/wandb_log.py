"""W&B from the trial itself: one run per (variant, seed), logged where the metrics are made.

Ray's WandbLoggerCallback logged one run per Tune trial from logging actors: runs named after Tune's
trial ids, the config as one nested blob, no test metrics, and streams cut off when the actors were
killed at the end. Here each seed of a trial opens its own run (name `{variant}-s{seed}`, group =
sweep, job_type = variant), logs every epoch with `epoch` as the step (with diagnostics_every > 0,
an epoch's record also holds its ia_*/di_* diagnostics, so they join its history), puts the test
metrics and the best epoch's diagnostics into the summary and finishes before the trial returns.

W&B is optional: every call is guarded, the first failure turns logging off for the rest of the
trial and is reported back as text, and nothing here ever raises into a sweep.
"""
from __future__ import annotations

import json
import math
import netrc
import numbers
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

CHOICES = ("auto", "online", "offline", "off")  # the --wandb choices of every CLI of the project
PROJECT = "crocodile-sweeps"
# Per-epoch record keys that are not metrics: the seed is config, the objective repeats the monitor.
NOT_LOGGED = {"seed", "seed_index", "objective"}
SUMMARY_KEYS = ("best_epoch", "epochs_run", "wall_time_s", "samples_per_s", "status", "error", "diagnostics_s",
                "diagnostics_path")
# Row columns that go to the summary when finite: test/val metrics, the best epoch's diagnostics.
SUMMARY_PREFIXES = ("test_", "val_", "ia_", "di_")


def resolve_mode(choice: str | None) -> str:
    """'online', 'offline' or 'off' from a --wandb choice; None means auto when a key is set, else off."""
    if choice is None:
        choice = "auto" if os.environ.get("WANDB_API_KEY") else "off"
    if choice not in CHOICES:
        raise ValueError(f"--wandb must be one of {CHOICES}, got {choice!r}")
    if choice == "auto":
        return "online" if has_credentials() else "offline"
    return choice


def has_credentials() -> bool:
    """A W&B key in the environment or from `wandb login` (~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def credentials_problem(mode: str) -> str | None:
    """One line when online logging cannot work; checked before Ray starts.

    Without a key, wandb.init prompts for an account on a terminal and waits forever.
    """
    if mode == "online" and not has_credentials():
        return ("--wandb online needs WANDB_API_KEY or `wandb login`; use --wandb offline to log locally "
                "and `wandb sync` later")
    return None


@dataclass(frozen=True)
class Target:
    """Where a sweep's runs go. dir: W&B writes DIR/wandb/offline-run-* (None: W&B's default)."""

    mode: str  # online / offline
    group: str  # the sweep name
    dir: str | None = None
    project: str = PROJECT


def target_for(mode: str, sweep_name: str, local_sweep_dir: str | None) -> Target | None:
    if mode == "off":
        return None
    return Target(mode=mode, group=sweep_name, dir=f"{local_sweep_dir}/wandb" if local_sweep_dir else None,
                  project=os.environ.get("WANDB_PROJECT", PROJECT))


def run_name(variant: str, seed: int) -> str:
    return f"{variant}-s{seed}"


def init_run(target: Target, *, name: str, job_type: str, config: dict):
    """wandb.init with the settings every run of the project shares; raises like wandb.init."""
    import wandb

    if target.dir:
        Path(target.dir).mkdir(parents=True, exist_ok=True)
    return wandb.init(project=target.project, group=target.group, job_type=job_type, name=name, config=config,
                      dir=target.dir, mode=target.mode, reinit="create_new",
                      # No console capture: the trial's own output belongs to Ray's logs, and wrapping
                      # stdout in a reused Tune actor would capture the next trial's output too.
                      settings=wandb.Settings(console="off", silent=True, x_save_requirements=False))


class TrialLogger:
    """The W&B runs of one trial, one per seed (sweeper.trial.SeedHooks); safe with W&B broken.

    The run's config is the seed's identity row: the flat resolved RunConfig plus sweep, study,
    variant, cell, trial id, data and seed, and the git commit. job_type is the variant for a
    replicate study and "search" for a search, whose every trial is a variant of its own.
    """

    def __init__(self, target: Target | None, *, job_type: str, extra_config: dict):
        self.target, self.job_type, self.extra_config = target, job_type, extra_config
        self.run = None
        self.seed: int | None = None
        self.error = ""  # the first failure; logging stops after it
        self.names: list[str] = []

    @property
    def active(self) -> bool:
        return self.target is not None and not self.error

    def start_seed(self, identity: dict) -> None:
        """Open the seed's run (finishing one a stopped seed left open)."""
        if not self.active:
            return
        self.close("stopped")
        name = run_name(identity["variant"], int(identity["seed"]))
        config = {**{k: list(v) if isinstance(v, tuple) else v for k, v in identity.items()}, **self.extra_config}
        self._guard(lambda: self._open(name, config))
        self.seed = int(identity["seed"])

    def _open(self, name: str, config: dict) -> None:
        self.run = init_run(self.target, name=name, job_type=self.job_type, config=config)
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")
        self.names.append(name)

    def log_epoch(self, record: dict) -> None:
        if self.run is None or not self.active:
            return
        metrics = {k: v for k, v in record.items() if k not in NOT_LOGGED and _is_number(v)}
        # commit: written now, not when the next step comes. A step still pending at finish was
        # written after end_seed's summary and overwrote the best epoch's values with the last epoch's.
        self._guard(lambda: self.run.log(metrics, step=int(record["epoch"]), commit=True))

    def end_seed(self, row: dict) -> None:
        """The seed's stored row: test metrics and diagnostics into the summary, then finish."""
        if not self.active:
            return
        if self.run is None or self.seed != row.get("seed"):
            return
        summary = {k: v for k, v in row.items()
                   if k.startswith(SUMMARY_PREFIXES) and _is_number(v) or k in SUMMARY_KEYS}
        failed = row.get("status") != "ok"
        self._guard(lambda: self.run.summary.update(summary))
        self._finish(1 if failed else 0)

    def close(self, status: str) -> None:
        """Finish a run left open (the trial was stopped or raised), recording why."""
        if self.run is None:
            return
        if self.active:
            self._guard(lambda: self.run.summary.update({"status": status}))
        self._finish(0 if status == "stopped" else 1)

    def shutdown(self) -> None:
        """Stop W&B's service once the trial is done. Left running, it died with the Tune actor and
        the actor's exit handler printed ConnectionResetError tracebacks; restarting costs ~10 ms."""
        if not self.names:
            return
        try:
            import wandb

            wandb.teardown()
        except Exception as exc:  # noqa: BLE001 - W&B must never fail a trial
            self.error = self.error or f"{type(exc).__name__}: {exc}"

    def _finish(self, exit_code: int) -> None:
        run, self.run, self.seed = self.run, None, None
        try:
            run.finish(exit_code=exit_code)
        except Exception as exc:  # noqa: BLE001 - W&B must never fail a trial
            self.error = self.error or f"{type(exc).__name__}: {exc}"

    def _guard(self, call) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - W&B must never fail a trial
            self.error = f"{type(exc).__name__}: {exc}"
            print(f"W&B logging off for this trial: {self.error}", flush=True)
            if self.run is not None:
                self._finish(1)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(float(value))


def target_dict(target: Target | None) -> dict | None:
    """A Target as plain data, for Tune's template (Ray pickles it to the trial)."""
    return asdict(target) if target else None


# ---- reading offline runs back ------------------------------------------------------------------

# The .wandb file is a LevelDB-style log: a 7-byte header, then 32 KiB blocks of records, each with a
# 7-byte header (crc32 4, length 2, type 1); a record longer than a block is split FIRST/MIDDLE/LAST.
_HEADER, _BLOCK, _FULL, _FIRST, _MIDDLE, _LAST = 7, 32768, 1, 2, 3, 4


@dataclass(frozen=True)
class OfflineRun:
    path: Path
    name: str
    group: str
    job_type: str
    config: dict
    summary: dict
    history: list[dict]
    exit_code: int | None  # None: the stream never finished

    def tables(self) -> dict[str, dict]:
        """The W&B Tables the run logged, by key: {'columns': [...], 'data': [[...], ...]}."""
        out = {}
        for file in sorted((self.path / "files" / "media" / "table").glob("*.table.json")):
            out[file.name.rsplit("_", 2)[0]] = json.loads(file.read_text())  # KEY_STEP_HASH.table.json
        return out


def read_offline_run(run_dir: Path) -> OfflineRun:
    """Name, group, config, summary, history and exit code of an offline-run-* folder."""
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    raw = next(run_dir.glob("run-*.wandb")).read_bytes()
    name = group = job_type = ""
    config, summary, history, exit_code = {}, {}, [], None
    for payload in _records(raw):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name, group, job_type = record.run.display_name, record.run.run_group, record.run.job_type
            config.update(_items(record.run.config.update))
        elif kind == "config":
            config.update(_items(record.config.update))
        elif kind == "summary":
            summary.update(_items(record.summary.update))
        elif kind == "history":
            history.append({(item.key or "/".join(item.nested_key)): _value(item) for item in record.history.item})
        elif kind == "exit":
            exit_code = record.exit.exit_code
    config = {k: v["value"] if isinstance(v, dict) and "value" in v else v for k, v in config.items()}
    return OfflineRun(run_dir, name, group, job_type, config, summary, history, exit_code)


def _records(raw: bytes):
    position, pending = _HEADER, b""
    while position + 7 <= len(raw):
        room = _BLOCK - position % _BLOCK
        if room < 7:  # a block's tail too short for a record header is padding
            position += room
            continue
        _, length, kind = struct.unpack("<IHB", raw[position:position + 7])
        if kind == 0 and length == 0:
            position += room
            continue
        chunk = raw[position + 7:position + 7 + length]
        position += 7 + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def _items(items) -> dict:
    return {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in items}


def _value(item):
    if item.value_json:
        return json.loads(item.value_json)
    which = item.WhichOneof("value")  # typed values (number, integer, text, ...) of newer writers
    return getattr(item, which) if which else None


def offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Every offline run under a sweep's wandb/ folder (DIR/wandb/offline-run-*)."""
    return [read_offline_run(p) for p in sorted(Path(wandb_dir).glob("wandb/offline-run-*"))]
