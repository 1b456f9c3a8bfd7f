"""The real commands, end to end, against this machine over SSH: `ray up` with a config rendered
from cluster/local.yaml (head_ip 127.0.0.1, ssh user root, a throwaway key), then
`ray submit <config> sweeper/run.py -- --smoke-test ...` and `ray job submit --working-dir .`
through `ray dashboard`'s port forward; the results and report land in the storage path.

Needs sshd on 127.0.0.1 set up by .ci/cluster_e2e.sh: the throwaway key logs in as root with HOME
set to a scratch "node home", so all the launcher writes to ~ on the node (synced project, ~/.bashrc
hook, secrets, ray_bootstrap_*) stays out of root's home. The rendered config keeps the shipped
file_mounts, shell hook and start commands (cluster/ray-node.sh: token auth, dashboard on
127.0.0.1) and changes only: the machines, the SSH login, free ports instead of 6379/8265/...,
and no install commands (the node is this machine, where the project is already installed: a
`pip install -e ~/crocodile-sweeps` there would re-point this machine's install). The cluster is
stopped with `ray-node.sh stop` (by PID), never `ray down`, whose `ray stop` would kill every Ray
process on the machine.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cluster_helpers import REPO, alive, clean_ray_env, free_port, free_ray_ports, port_args, stop_pid

pytestmark = [pytest.mark.cluster_e2e, pytest.mark.ray]

KEY = Path(os.environ.get("CROCODILE_E2E_SSH_KEY", "~/.ssh/crocodile_e2e")).expanduser()
NODE_HOME = Path(os.environ.get("CROCODILE_E2E_NODE_HOME", "/tmp/croc-node"))
RAY = [str(Path(sys.executable).parent / "ray")] if (Path(sys.executable).parent / "ray").exists() else ["ray"]
SSH = ["ssh", "-i", str(KEY), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o",
       "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "root@127.0.0.1"]
# What table5_ablation --smoke-test --seeds 0 stores: one row per variant.
VARIANTS = {"MMoE", "ME-MMoE", "ME-MMoE-PG", "ME-MMoE-PG+Cov", "ME-MMoE-PEG", "Crocodile"}


def render_config(path: Path, ports: dict[str, int]) -> dict:
    cfg = yaml.safe_load((REPO / "cluster" / "local.yaml").read_text())
    cfg["cluster_name"] = f"croc-e2e-{uuid.uuid4().hex[:6]}"
    cfg["provider"] = {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    cfg["auth"] = {"ssh_user": "root", "ssh_private_key": str(KEY)}
    hooks = [c for c in cfg["setup_commands"] if "ray-env.sh" in c]
    assert hooks and all("pip install" not in c for c in hooks)
    cfg["setup_commands"] = [*hooks, "python -c 'import sweeper.run, model.train, ray'"]
    (head,) = cfg["head_start_ray_commands"]
    assert "--port=6379" in head and "--dashboard-port=8265" in head and "--dashboard-host=127.0.0.1" in head
    others = {k: v for k, v in ports.items() if k not in ("port", "dashboard-port")}
    head = head.replace("--port=6379", f"--port={ports['port']}").replace(
        "--dashboard-port=8265", f"--dashboard-port={ports['dashboard-port']}")
    cfg["head_start_ray_commands"] = [" ".join([head, *port_args(others), "--num-cpus=2"])]
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return cfg


def run(cmd: list[str], env: dict, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, **kwargs)
    return proc


def tail(proc: subprocess.CompletedProcess, n: int = 4000) -> str:
    return f"rc={proc.returncode}\n--- stdout\n{proc.stdout[-n:]}\n--- stderr\n{proc.stderr[-n:]}"


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    check = subprocess.run([*SSH, "echo $HOME"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and check.stdout.strip() == str(NODE_HOME), (
        f"ssh root@127.0.0.1 with {KEY} must work and give HOME={NODE_HOME}: run .ci/cluster_e2e.sh\n"
        f"{check.stdout}{check.stderr}")
    tmp = tmp_path_factory.mktemp("e2e")
    laptop = tmp / "laptop"  # your machine's HOME: ~/.crocodile/secrets is synced from here
    laptop.mkdir()
    token = secrets.token_hex(32)
    env = {**clean_ray_env(), "HOME": str(laptop), "RAY_TMPDIR": str(tmp / "rt"),  # launcher state files
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    (tmp / "rt").mkdir()
    wrote = run(["bash", str(REPO / "cluster" / "secrets.sh")], env, 60)
    assert wrote.returncode == 0, tail(wrote)

    ports = free_ray_ports()
    config = tmp / "e2e.yaml"
    cfg = render_config(config, ports)
    pidfile = NODE_HOME / ".crocodile" / "ray-node.pid"
    started = time.time()
    up = run([*RAY, "up", "-y", "--no-config-cache", str(config)], env, 600)
    info = {"config": str(config), "env": env, "token": token, "ports": ports, "tmp": tmp, "cfg": cfg,
            "up_s": time.time() - started}
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    try:
        assert up.returncode == 0, tail(up)
        assert pid is not None and alive(pid)
        yield info
    finally:
        down = run([*RAY, "exec", "--no-config-cache", str(config), "bash ~/crocodile-sweeps/cluster/ray-node.sh stop"],
                   env, 180)
        if pid is not None:
            stop_pid(pid)  # no-op when ray-node.sh stop worked
        assert pid is None or not alive(pid), tail(down)


def test_ray_submit_runs_the_sweep_on_the_cluster(launched):
    storage = launched["tmp"] / "sweeps"
    started = time.time()
    proc = run([*RAY, "submit", "--no-config-cache", launched["config"], "sweeper/run.py", "--",
                "--smoke-test", "--seeds", "0", "--storage", str(storage), "--name", "e2e", "--wandb", "off"],
               launched["env"], 900)
    print(f"ray up {launched['up_s']:.0f} s, ray submit {time.time() - started:.0f} s")
    assert proc.returncode == 0, tail(proc)
    # run.py found the running cluster (through the node's address file), with the token.
    assert "Ray: cluster at " in proc.stdout and f":{launched['ports']['port']}" in proc.stdout, tail(proc)

    sweep = storage / "e2e"
    frame = pd.read_parquet(sweep / "results")
    assert set(frame["variant"]) == VARIANTS and len(frame) == len(VARIANTS), frame[["variant", "seed", "status"]]
    assert set(frame["status"]) == {"ok"} and set(frame["seed"]) == {0}
    assert set(frame["path"]) == {"in_process"} and frame["node_id"].nunique() == 1
    meta = json.loads((sweep / "sweep.json").read_text())
    assert meta["name"] == "e2e" and meta["data"] == "synthetic:tiny"
    report = sweep / "report"
    assert report.is_dir() and any(report.iterdir()), f"no report in {report}:\n{tail(proc)}"


def test_ray_job_submit_through_the_dashboard_port_forward(launched):
    local_port = free_port()
    forward = subprocess.Popen([*RAY, "dashboard", "--no-config-cache", "--port", str(local_port), "--remote-port",
                                str(launched["ports"]["dashboard-port"]), launched["config"]],
                               env=launched["env"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", local_port), timeout=1).close()
                break
            except OSError:
                assert forward.poll() is None, forward.stdout.read()
                time.sleep(0.5)
        storage = launched["tmp"] / "sweeps"
        env = {**launched["env"], "RAY_API_SERVER_ADDRESS": f"http://127.0.0.1:{local_port}"}
        proc = run([*RAY, "job", "submit", "--working-dir", ".", "--", "python", "sweeper/run.py", "--smoke-test",
                    "--seeds", "0", "--space", "table5_ablation", "--storage", str(storage), "--name", "e2e-job",
                    "--wandb", "off", "--no-report"], env, 900)
        assert proc.returncode == 0 and "succeeded" in proc.stdout, tail(proc)
        frame = pd.read_parquet(storage / "e2e-job" / "results")
        assert len(frame) > 0 and set(frame["status"]) == {"ok"}

        # The same API without the token is refused.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{local_port}/api/jobs/", timeout=30)
        assert refused.value.code == 401
    finally:
        os.killpg(forward.pid, signal.SIGTERM)  # `ray dashboard` and its ssh -L child
        forward.wait(timeout=30)


def test_the_dashboard_listens_on_the_head_localhost_only(launched):
    import ray._private.services

    node_ip = ray._private.services.get_node_ip_address()
    if node_ip.startswith("127."):
        pytest.skip("this machine has no non-loopback address")
    with pytest.raises(OSError):
        socket.create_connection((node_ip, launched["ports"]["dashboard-port"]), timeout=5).close()
