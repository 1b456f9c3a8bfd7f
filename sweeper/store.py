"""The results store: one Parquet file per finished (variant, seed) under <sweep>/results/.

Each file is written to a temporary name and renamed, so a reader never sees half a row and a
killed sweep loses nothing that finished. Works on any pyarrow filesystem URI (local, s3://, gs://).
"""
from __future__ import annotations

import os
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


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or a URI such as s3://bucket/prefix."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())
    return pafs.FileSystem.from_uri(uri)


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


class ResultsStore:
    def __init__(self, sweep_uri: str):
        self.sweep_uri = sweep_uri
        self.fs, self.root = resolve(sweep_uri)
        self.results_dir = f"{self.root}/results"

    def write_row(self, row: dict) -> str:
        """Write one result row atomically; return its path."""
        self.fs.create_dir(self.results_dir, recursive=True)
        name = f"{row.get('cell', 'cell')}-s{row.get('seed', 'x')}-{row['status']}-{uuid.uuid4().hex[:8]}.parquet"
        final = f"{self.results_dir}/{name}"
        tmp = f"{self.results_dir}/.tmp-{name}"
        table = pa.Table.from_pandas(pd.DataFrame([_plain(row)]), preserve_index=False)
        with self.fs.open_output_stream(tmp) as stream:
            pq.write_table(table, stream)
        self.fs.move(tmp, final)
        return final

    def read(self) -> pd.DataFrame:
        """All rows (empty frame when nothing finished yet)."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.results_dir, allow_not_found=True))
        except FileNotFoundError:
            return pd.DataFrame()
        files = sorted(i.path for i in infos if i.path.endswith(".parquet") and "/.tmp-" not in i.path)
        if not files:
            return pd.DataFrame()
        frames = [pq.read_table(f, filesystem=self.fs).to_pandas() for f in files]
        return pd.concat(frames, ignore_index=True, sort=False)

    def stored(self) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
        """(cell, seed) pairs stored ok, and those stored only as failed: one read of the folder."""
        frame = self.read()
        if frame.empty:
            return set(), set()
        keys = list(zip(frame["cell"], frame["seed"].astype(int)))
        ok = {key for key, status in zip(keys, frame["status"]) if status == OK}
        failed = {key for key, status in zip(keys, frame["status"]) if status == FAILED}
        return ok, failed - ok

    def write_text(self, name: str, text: str) -> None:
        self.fs.create_dir(self.root, recursive=True)
        tmp = f"{self.root}/.tmp-{name}"
        with self.fs.open_output_stream(tmp) as stream:
            stream.write(text.encode())
        self.fs.move(tmp, f"{self.root}/{name}")

    def read_text(self, name: str) -> str | None:
        try:
            with self.fs.open_input_stream(f"{self.root}/{name}") as stream:
                return stream.read().decode()
        except (FileNotFoundError, OSError):
            return None


def _plain(row: dict) -> dict:
    """Parquet-friendly values: tuples become strings like '128,64'."""
    return {k: ",".join(map(str, v)) if isinstance(v, (tuple, list)) else v for k, v in row.items()}


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
