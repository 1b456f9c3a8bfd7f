"""Cluster tests: launcher configs, token auth, multi-node sweeps, and the ray up/submit e2e.

Every Ray started here gets its own temp dir (RAY_TMPDIR) and free ports, and is stopped by PID:
other people's Ray on the same machine is never touched (no `ray stop`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
E2E_REASON = ("needs sshd on 127.0.0.1 with a throwaway key (it installs and configures it as root): "
              "run .ci/cluster_e2e.sh, which sets CROCODILE_CLUSTER_E2E=1")


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster_e2e: real `ray up` + `ray submit` over SSH to localhost; "
                                       "run through .ci/cluster_e2e.sh")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CROCODILE_CLUSTER_E2E") == "1":
        return
    skip = pytest.mark.skip(reason=E2E_REASON)
    for item in items:
        if "cluster_e2e" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def short_tmp():
    """A short private dir (Ray's Unix socket paths must stay under ~107 characters)."""
    path = tempfile.mkdtemp(prefix="crc", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)
