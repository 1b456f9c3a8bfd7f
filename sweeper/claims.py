"""Cell claims: drivers of one sweep share its (cell, seed)s, and no (cell, seed) runs twice at once.

A driver claims a (cell, seed) just before its trial starts and releases it once the trial's row is
stored (or the trial is given up). Files, on the sweep's own storage:

    claims/<cell>-s<seed>@<holder id>.json    one file per contender: {host, pid, started_at, heartbeat}

Claiming uses only "create a file under a unique name", "list a folder" and "delete a file", so it
works on every pyarrow filesystem whose listings show a finished write at once: local disks, NFS,
S3 (strongly consistent since 2020), GCS. Only claims in flight exist, so listing claims/ is cheap,
and no folder is ever created or removed per claim. To claim: (1) list and delete dead claims of the key;
(2) if a live claim of another driver is left, the cell is theirs; (3) write our claim and list
again; (4) if another live claim appeared meanwhile, withdraw ours (both may withdraw: the cell is
tried again later), else the cell is ours. Two drivers can never both pass (4): if A passed, B wrote
its file after A's second listing, so B's second listing sees A's file.

A claim is dead when its heartbeat (rewritten every HEARTBEAT_S by the holder) is older than
stale_after_s, or at once when its holder ran on this host and that process is gone (a kill -9 of
the driver frees its cells for the next run immediately). Clocks of different hosts must agree to
well within stale_after_s (NTP does).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.fs as pafs

from sweeper.store import resolve

HEARTBEAT_S = 15.0
STALE_AFTER_S = 90.0


@dataclass(frozen=True)
class Holder:
    """A driver process that claims cells."""

    id: str
    host: str
    pid: int
    started_at: float  # the process's start time (tells a reused PID apart)
    heartbeat: float = 0.0

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started_at))
        return f"host {self.host}, PID {self.pid}, started {started}"

    @classmethod
    def this_process(cls) -> "Holder":
        host, pid = socket.gethostname(), os.getpid()
        return cls(id=f"{_safe(host)}-{pid}-{uuid.uuid4().hex[:8]}", host=host, pid=pid,
                   started_at=process_start(pid) or time.time())


def process_start(pid: int) -> float | None:
    """When process pid started (Unix time), from /proc on Linux; None where that is unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def alive_here(holder: Holder) -> bool:
    """Whether holder (a process on this host) still runs: same PID and same start time."""
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    started = process_start(holder.pid)
    return started is None or abs(started - holder.started_at) < 2.0


class Claims:
    """Claims of one sweep, held by this process."""

    def __init__(self, sweep_uri: str, holder: Holder | None = None, stale_after_s: float = STALE_AFTER_S,
                 heartbeat_s: float = HEARTBEAT_S):
        self.fs, root = resolve(sweep_uri)
        self.dir = f"{root}/claims"
        self.holder = holder or Holder.this_process()
        self.stale_after_s, self.heartbeat_s = stale_after_s, heartbeat_s
        self.held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __getstate__(self) -> dict:
        # Tune pickles its search algorithm (with these claims) into the experiment's state file.
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_stop", "_thread")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _lock=threading.Lock(), _stop=threading.Event(), _thread=None)

    # ---- claiming ------------------------------------------------------------------------------

    def try_claim(self, key: str) -> Holder | None:
        """Claim key; None when it is now ours, else the live holder that has it."""
        if key in self.held:
            return None
        other = self._live_other(key, clean=True)
        if other is not None:
            return other
        self._write(key)
        other = self._live_other(key, clean=False)
        if other is not None:
            self._delete(key)
            return other
        with self._lock:
            self.held.add(key)
        return None

    def holder_of(self, key: str) -> Holder | None:
        """The live driver (not this one) that holds key, or None; dead claims are cleared."""
        return self._live_other(key, clean=True)

    def release(self, key: str) -> None:
        with self._lock:
            self.held.discard(key)
        self._delete(key)

    def release_all(self) -> None:
        for key in list(self.held):
            self.release(key)

    def holders(self) -> dict[str, Holder]:
        """Every key claimed by another live driver, with its holder."""
        keys = {i.path.rsplit("/", 1)[-1].split("@", 1)[0] for i in self._list(self.dir) if "@" in i.path}
        out = {key: self._live_other(key, clean=False) for key in keys}
        return {key: holder for key, holder in out.items() if holder is not None}

    # ---- heartbeat -----------------------------------------------------------------------------

    def __enter__(self) -> "Claims":
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="claims-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.release_all()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                keys = list(self.held)
            for key in keys:
                try:
                    self._write(key)
                except OSError:  # storage hiccup: the next beat tries again, well before stale
                    pass

    # ---- files ---------------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self.dir}/{_safe(key)}@{self.holder.id}.json"

    def _write(self, key: str) -> None:
        self.fs.create_dir(self.dir, recursive=True)
        body = json.dumps(asdict(Holder(**{**asdict(self.holder), "heartbeat": time.time()}))).encode()
        tmp = f"{self.dir}/.tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open_output_stream(tmp) as stream:
            stream.write(body)
        self.fs.move(tmp, self._path(key))

    def _delete(self, key: str) -> None:
        try:
            self.fs.delete_file(self._path(key))
        except (FileNotFoundError, OSError):
            pass

    def _list(self, folder: str) -> list:
        try:
            return self.fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        except FileNotFoundError:
            return []

    def _live_other(self, key: str, clean: bool) -> Holder | None:
        """A live claim on key by another holder; with clean, dead claims are deleted on the way."""
        found, prefix, mine = None, f"{_safe(key)}@", self._path(key).rsplit("/", 1)[-1]
        for info in self._list(self.dir):
            name = info.path.rsplit("/", 1)[-1]
            if not (name.startswith(prefix) and name.endswith(".json")) or name == mine:
                continue
            holder = self._read(info)
            if holder is None or not self._alive(holder):
                if clean:
                    try:
                        self.fs.delete_file(info.path)
                    except (FileNotFoundError, OSError):
                        pass
                continue
            found = found or holder
        return found

    def _read(self, info) -> Holder | None:
        try:
            with self.fs.open_input_stream(info.path) as stream:
                return Holder(**json.loads(stream.read()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            # Unreadable: a claim of unknown origin, alive while its file is fresh.
            mtime = info.mtime.timestamp() if info.mtime else 0.0
            return Holder(id="?", host="?", pid=0, started_at=mtime, heartbeat=mtime)

    def _alive(self, holder: Holder) -> bool:
        if time.time() - holder.heartbeat > self.stale_after_s:
            return False
        if holder.host == self.holder.host and holder.pid:
            return alive_here(holder)
        return True


def _safe(text: str) -> str:
    """File-name safe, and without "@" (which separates a claim's key from its holder)."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text)
