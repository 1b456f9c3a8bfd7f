"""A sweep that starts Ray in-process exposes nothing beyond this machine: every Ray server listens
on 127.0.0.1, token auth is on (set by the project, not left to Ray's default), and the token file
is private (0600). Run in a fresh interpreter with its own HOME and RAY_TMPDIR."""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray
REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, os, subprocess, sys
import ray, psutil  # psutil: vendored by ray (ray/thirdparty_files)
from sweeper import tune_runner

how = tune_runner.connect(None, with_dashboard=True)
tree = [psutil.Process()] + psutil.Process().children(recursive=True)
listening = set()
for proc in tree:
    try:
        conns = proc.net_connections(kind="inet")
    except psutil.Error:
        continue
    listening |= {c.laddr.ip for c in conns if c.status == psutil.CONN_LISTEN}
gcs = ray.get_runtime_context().gcs_address
env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
# A client on this machine without the token (Ray's single-machine mode, or it looks for 127.0.0.1
# on the network address), and a second driver with it, as run.py joins.
stranger = subprocess.run([sys.executable, "-c", f"import ray; ray.init(address={gcs!r})"], capture_output=True,
                          text=True, timeout=120, env={**env, "HOME": "/nonexistent", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
                                                       "RAY_gcs_server_port_wait_time_s": "10"})
second = subprocess.run([sys.executable, "-c", "import ray, sys; from sweeper import tune_runner; "
                         "print(tune_runner.connect(sys.argv[1], with_dashboard=False), len(ray.nodes()))", gcs],
                        capture_output=True, text=True, timeout=120, env={**env, "RAY_AUTH_MODE": "token"})
print(json.dumps({"how": how, "listening": sorted(listening), "mode": os.environ.get("RAY_AUTH_MODE"), "gcs": gcs,
                  "stranger_rc": stranger.returncode, "stranger_err": stranger.stderr[-4000:],
                  "second": second.stdout.strip().splitlines()[-1:], "second_err": second.stderr[-400:]}))
ray.shutdown()
"""


@pytest.fixture
def short_tmp():
    """A short private dir (Ray's Unix socket paths must stay under ~107 characters)."""
    path = Path(tempfile.mkdtemp(prefix="crl", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_local_ray_listens_on_localhost_only_with_a_private_token(short_tmp):
    tmp_path = short_tmp
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    token = home / ".ray" / "auth_token"
    token.write_text("a" * 64)
    token.chmod(0o644)  # as Ray 2.60 itself leaves it
    (tmp_path / "t").mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")}, "HOME": str(home),
           "RAY_TMPDIR": str(tmp_path / "t"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "listening on 127.0.0.1 only, token auth" in seen["how"] and "now mode 0600" in seen["how"]
    assert seen["listening"] and all(ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1") for ip in seen["listening"]), seen
    assert seen["mode"] == "token"
    assert seen["stranger_rc"] != 0 and "InvalidAuthToken" in seen["stranger_err"], seen  # no token, no entry
    assert seen["second"] == [f"cluster at {seen['gcs']} 1"], seen  # a driver with the token joins
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and token.read_text() == "a" * 64


def test_a_missing_token_file_is_created_private(tmp_path, monkeypatch):
    from sweeper.tune_runner import ensure_local_token

    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "d" / "token"))
    assert ensure_local_token().endswith("new, mode 0600")
    path = tmp_path / "d" / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text()) == 64
    assert ensure_local_token() == str(path)  # kept as it is
    monkeypatch.setenv("RAY_AUTH_TOKEN", "x" * 64)
    assert ensure_local_token() == "token from RAY_AUTH_TOKEN"
