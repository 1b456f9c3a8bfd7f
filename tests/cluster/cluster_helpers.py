"""Helpers for the cluster tests (imported by the test modules; not a test module)."""
from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RAY_NODE = REPO / "cluster" / "ray-node.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT_OPTIONS = ("port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                "metrics-export-port", "runtime-env-agent-port", "node-manager-port", "object-manager-port",
                "ray-client-server-port")


def free_ray_ports() -> dict[str, int]:
    """A free port for every `ray start` port option that has a fixed default (6379, 8265, 52365,
    10001, ...), so a test node never collides with another Ray on this machine. The client server
    port is an ephemeral one, outside Ray's worker port range 10002-19999."""
    return {option: free_port() for option in PORT_OPTIONS}


def port_args(ports: dict[str, int]) -> list[str]:
    return [f"--{option}={port}" for option, port in ports.items()]


def clean_ray_env() -> dict:
    """This process's environment without any Ray auth, address or temp dir setting."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("RAY_AUTH", "RAY_ADDRESS", "RAY_API_SERVER", "RAY_TMPDIR"))}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_pid(pid: int, timeout: float = 60) -> None:
    """SIGTERM one process (a `ray start --block` stops its node on it), SIGKILL its group if stuck."""
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and alive(pid):
        time.sleep(0.2)
    if alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains text (to check a test node left nothing behind)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids
