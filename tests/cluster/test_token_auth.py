"""Token auth and a localhost-only dashboard, on a head started the way every cluster YAML starts
it: cluster/ray-node.sh (`ray start --head --block` with RAY_AUTH_MODE=token and the token file
that file_mounts puts on each node), stopped by PID with `ray-node.sh stop`."""
from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from cluster_helpers import RAY_NODE, alive, clean_ray_env, free_ray_ports, port_args, processes_mentioning, stop_pid

pytestmark = pytest.mark.ray

CONNECT = ("import ray, sys\n"
           "ray.init(address=sys.argv[1], logging_level='ERROR')\n"
           "print('CONNECTED', len(ray.nodes()))\n"
           "ray.shutdown()\n")


@pytest.fixture(scope="module")
def head(short_tmp):
    """A token-auth head node on free ports, in its own HOME (secrets) and RAY_TMPDIR."""
    home = short_tmp / "home"
    (home / ".crocodile" / "secrets").mkdir(parents=True)
    token = secrets.token_hex(32)
    (home / ".crocodile" / "secrets" / "auth_token").write_text(token)
    (short_tmp / "t").mkdir()
    env = {**clean_ray_env(), "HOME": str(home), "RAY_TMPDIR": str(short_tmp / "t")}
    ports = free_ray_ports()
    start = subprocess.run(["bash", str(RAY_NODE), "head", *port_args(ports), "--num-cpus=1",
                            "--dashboard-host=127.0.0.1", "--include-dashboard=true"],
                           env=env, capture_output=True, text=True, timeout=180)
    pidfile = home / ".crocodile" / "ray-node.pid"
    pid = int(pidfile.read_text()) if pidfile.exists() else None
    try:
        assert start.returncode == 0, start.stdout[-3000:] + start.stderr[-3000:]
        yield {"token": token, "gcs": f"127.0.0.1:{ports['port']}", "dashboard": ports["dashboard-port"],
               "pid": pid, "env": env, "tmp": str(short_tmp)}
    finally:
        stop = subprocess.run(["bash", str(RAY_NODE), "stop"], env=env, capture_output=True, text=True, timeout=120)
        if pid is not None:
            stop_pid(pid)  # no-op when ray-node.sh stop worked
        assert pid is None or not alive(pid), stop.stdout + stop.stderr


def client_env(**extra) -> dict:
    """A client that has no token unless given one: no RAY_AUTH_* and an empty HOME (no
    ~/.ray/auth_token). It gives up after 3 connection attempts (default: ~20)."""
    return {**clean_ray_env(), "HOME": "/nonexistent-crocodile-home", "RAY_gcs_server_port_wait_time_s": "3",
            **extra}


def test_a_client_without_the_right_token_is_refused_and_one_with_it_connects(head):
    cmd = [sys.executable, "-c", CONNECT, head["gcs"]]
    clients = {
        "no token": subprocess.Popen(cmd, env=client_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        "wrong token": subprocess.Popen(cmd, env=client_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32)),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
        "the token": subprocess.Popen(cmd, env=client_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=head["token"]),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True),
    }
    out = {name: proc.communicate(timeout=180)[0] for name, proc in clients.items()}
    rc = {name: proc.returncode for name, proc in clients.items()}
    for name in ("no token", "wrong token"):
        assert rc[name] != 0 and "CONNECTED" not in out[name], out[name][-2000:]
        assert "InvalidAuthToken" in out[name], out[name][-2000:]
    assert rc["the token"] == 0 and "CONNECTED 1" in out["the token"], out["the token"][-2000:]


def test_the_dashboard_and_job_api_need_the_token_and_listen_on_localhost_only(head):
    base = f"http://127.0.0.1:{head['dashboard']}"
    for path in ("/api/version", "/api/jobs/"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + path, timeout=30)
        assert refused.value.code == 401
        request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {head['token']}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    # Not reachable on the machine's network address (the one Ray itself advertises).
    import ray._private.services

    node_ip = ray._private.services.get_node_ip_address()
    if not node_ip.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((node_ip, head["dashboard"]), timeout=5).close()


def test_ray_node_stop_stops_only_this_node(head):
    assert alive(head["pid"]) and processes_mentioning(head["tmp"])
    stop = subprocess.run(["bash", str(RAY_NODE), "stop"], env=head["env"], capture_output=True, text=True,
                          timeout=120)
    assert stop.returncode == 0, stop.stderr
    assert not alive(head["pid"])
    deadline = time.time() + 30
    while processes_mentioning(head["tmp"]) and time.time() < deadline:
        time.sleep(0.5)
    assert processes_mentioning(head["tmp"]) == []
