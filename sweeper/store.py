"""The results store: one Parquet file per finished (cell, seed) attempt under <sweep>/results/.

Each file is written to a temporary name and renamed, so a reader never sees half a row and a
killed sweep loses nothing that finished. Works on any pyarrow filesystem URI (local, s3://, gs://).

  results/            the latest attempt of every (cell, seed): what `pandas.read_parquet` and
                      `load_results` read (every file has the same columns: sweeper/schema.py)
  results/.attempts/  earlier attempts (a failed row later rerun, a --force rerun), kept as history
  results/.corrupt/   files that could not be read (a partial write by another tool, a full disk),
                      set aside with a warning; their (cell, seed) counts as not stored and reruns
  models/             the best epoch's weights of each finished (cell, seed) (see sweeper/trial.py)

pyarrow's dataset reader skips names starting with "." or "_", so the two hidden folders and the
.tmp-* files in flight never reach a `pandas.read_parquet(results_dir)`.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

OK, FAILED = "ok", "failed"
KEY_COLUMNS = ("cell", "seed", "status")
ATTEMPT = re.compile(r"-a(\d+)-")


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or a URI such as s3://bucket/prefix."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    return pafs.FileSystem.from_uri(uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


def row_file_prefix(cell: str, seed: int) -> str:
    return f"{cell}-s{seed}-"


def attempt_of(name: str) -> int:
    """The attempt number in a row file's name (files of older versions have none: attempt 1)."""
    found = ATTEMPT.search(name)
    return int(found.group(1)) if found else 1


class ResultsStore:
    def __init__(self, sweep_uri: str):
        self.sweep_uri = sweep_uri
        self.fs, self.root = resolve(sweep_uri)
        self.results_dir = f"{self.root}/results"
        self.attempts_dir = f"{self.results_dir}/.attempts"
        self.corrupt_dir = f"{self.results_dir}/.corrupt"

    # ---- rows ----------------------------------------------------------------------------------

    def write_row(self, row: dict, schema: pa.Schema) -> str:
        """Write one result row atomically (exactly `schema`'s columns); return its path.

        Earlier attempts of the same (cell, seed) then move to results/.attempts/: the latest wins."""
        from sweeper.schema import to_table  # imports torch: not needed by readers such as the report

        table = to_table(row, schema)
        self.fs.create_dir(self.results_dir, recursive=True)
        cell, seed, attempt = row["cell"], int(row["seed"]), int(row.get("attempt") or 1)
        name = f"{row_file_prefix(cell, seed)}a{attempt}-{row['status']}-{uuid.uuid4().hex[:8]}.parquet"
        final = f"{self.results_dir}/{name}"
        tmp = f"{self.results_dir}/.tmp-{name}"
        with self.fs.open_output_stream(tmp) as stream:
            pq.write_table(table, stream)
        self.fs.move(tmp, final)
        for other in self._row_files():
            base = other.rsplit("/", 1)[-1]
            if base != name and base.startswith(row_file_prefix(cell, seed)) and attempt_of(base) <= attempt:
                self._move_aside(other, self.attempts_dir)
        return final

    def read(self, all_attempts: bool = False) -> pd.DataFrame:
        """The latest attempt of every (cell, seed) (empty frame when nothing finished yet).

        all_attempts adds the earlier ones from results/.attempts/. An unreadable file is moved to
        results/.corrupt/ with a one-line warning, and its (cell, seed) counts as not stored."""
        files = self._row_files() + (self._row_files(self.attempts_dir) if all_attempts else [])
        frames = []
        for path in files:
            try:
                frame = pq.read_table(path, filesystem=self.fs).to_pandas()
            except FileNotFoundError:  # moved by a concurrent writer or reader between list and read
                continue
            except (OSError, pa.ArrowException, ValueError) as exc:
                self._set_aside(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            missing = [c for c in KEY_COLUMNS if c not in frame.columns]
            if missing or frame.empty:
                self._set_aside(path, f"not a results row (no rows, or lacks columns {missing})")
                continue
            if "attempt" not in frame.columns:
                frame["attempt"] = attempt_of(path)
            frames.append(frame)
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True, sort=False)
        frame["attempt"] = frame["attempt"].fillna(1).astype(int)
        if all_attempts:
            return frame
        order = frame.sort_values(["attempt", "finished_at"] if "finished_at" in frame.columns else ["attempt"],
                                  kind="stable")
        return order.drop_duplicates(["cell", "seed"], keep="last").sort_index().reset_index(drop=True)

    def stored(self) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
        """(cell, seed) pairs whose latest attempt is ok, and those whose latest attempt failed."""
        frame = self.read()
        if frame.empty:
            return set(), set()
        keys = list(zip(frame["cell"], frame["seed"].astype(int)))
        ok = {key for key, status in zip(keys, frame["status"]) if status == OK}
        return ok, set(keys) - ok

    def attempts(self) -> dict[tuple[str, int], int]:
        """The latest stored attempt number of every (cell, seed), from file names alone."""
        out: dict[tuple[str, int], int] = {}
        for path in self._row_files() + self._row_files(self.attempts_dir):
            match = re.match(r"(.+)-s(\d+)-", path.rsplit("/", 1)[-1])
            if match:
                key = (match.group(1), int(match.group(2)))
                out[key] = max(out.get(key, 0), attempt_of(path))
        return out

    def has_row(self, cell: str, seed: int, attempt: int = 1) -> bool:
        """Whether results/ holds a row of this (cell, seed) from `attempt` or later (a listing, no read)."""
        prefix = row_file_prefix(cell, seed)
        return any(p.rsplit("/", 1)[-1].startswith(prefix) and attempt_of(p) >= attempt for p in self._row_files())

    def read_row(self, cell: str, seed: int, attempt: int = 1) -> dict | None:
        """The stored row of this (cell, seed) from `attempt` or later, or None (reads one file)."""
        prefix = row_file_prefix(cell, seed)
        for path in self._row_files():
            if path.rsplit("/", 1)[-1].startswith(prefix) and attempt_of(path) >= attempt:
                try:
                    return pq.read_table(path, filesystem=self.fs).to_pylist()[0]
                except (OSError, pa.ArrowException, ValueError, IndexError):
                    continue  # unreadable: the next full read sets it aside
        return None

    def set_aside(self) -> list[str]:
        """Files moved to results/.corrupt/ so far (by any reader)."""
        return self._row_files(self.corrupt_dir)

    # ---- other files ---------------------------------------------------------------------------

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def write_bytes(self, name: str, data: bytes) -> str:
        """Write <sweep>/<name> atomically (name may hold folders); return its full path."""
        final = f"{self.root}/{name}"
        folder, base = final.rsplit("/", 1)
        self.fs.create_dir(folder, recursive=True)
        tmp = f"{folder}/.tmp-{uuid.uuid4().hex[:8]}-{base}"
        with self.fs.open_output_stream(tmp) as stream:
            stream.write(data)
        self.fs.move(tmp, final)
        return final

    def read_text(self, name: str) -> str | None:
        try:
            with self.fs.open_input_stream(f"{self.root}/{name}") as stream:
                return stream.read().decode()
        except (FileNotFoundError, OSError):
            return None

    # ---- internals -----------------------------------------------------------------------------

    def _row_files(self, folder: str | None = None, suffix: str = ".parquet") -> list[str]:
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(folder or self.results_dir, allow_not_found=True))
        except FileNotFoundError:
            return []
        return sorted(i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix)
                      and not i.path.rsplit("/", 1)[-1].startswith("."))

    def _set_aside(self, path: str, why: str) -> None:
        dest = self._move_aside(path, self.corrupt_dir)
        if dest:
            from sweeper.console import notify

            notify(f"warning: results file {path} is unreadable ({why}); moved to {dest}; its (cell, seed) "
                   f"counts as not stored and runs again")

    def _move_aside(self, path: str, folder: str) -> str | None:
        self.fs.create_dir(folder, recursive=True)
        dest = f"{folder}/{path.rsplit('/', 1)[-1]}"
        try:
            self.fs.move(path, dest)
        except FileNotFoundError:  # another reader or writer moved it first
            return None
        return dest


def load_results(uri: str, *, all_attempts: bool = False) -> pd.DataFrame:
    """The rows of a sweep (a local folder or a pyarrow URI such as s3://bucket/prefix/NAME).

    The latest attempt of every (cell, seed), from every readable file; `all_attempts` adds the
    earlier ones (column `attempt`). The same rows as `pandas.read_parquet(<sweep>/results)`, but
    robust to a damaged file (set aside with a warning) and to files of older versions."""
    return ResultsStore(uri).read(all_attempts=all_attempts)


@lru_cache(maxsize=1)
def provenance() -> dict:
    """Where and with what a row was produced (git commit, host, library versions)."""
    import optuna
    import torch

    try:
        import ray
        ray_version = ray.__version__
    except ImportError:
        ray_version = ""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"git_commit": commit or os.environ.get("CROCODILE_GIT_COMMIT", ""), "host": socket.gethostname(),
            "torch_version": torch.__version__, "ray_version": ray_version, "optuna_version": optuna.__version__}


def now() -> float:
    return time.time()
