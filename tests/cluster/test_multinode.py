"""Sweeps on a multi-node Ray cluster on one machine (ray.cluster_utils.Cluster: a head that runs
no trials + 2 one-CPU worker nodes), driven through sweeper.run.main(["--address", ...]) like
`ray submit` does: trials spread over the nodes, and losing a node mid-sweep loses nothing."""
from __future__ import annotations

import glob
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml

from cluster_helpers import free_port
from sweeper import run
from sweeper.store import ResultsStore

pytestmark = pytest.mark.ray

VARIANTS = [{"name": "MMoE", "set": {"embedding": "SE", "gating": "standard", "aux_loss": "none"}},
            {"name": "ME-MMoE-PG", "set": {"embedding": "ME", "gating": "pg", "aux_loss": "none"}},
            {"name": "Crocodile", "set": {"embedding": "ME", "gating": "peg", "aux_loss": "cov"}}]


@pytest.fixture(scope="module")
def cluster(short_tmp):
    from ray.cluster_utils import Cluster

    # Its own temp dir: the cluster's address file and sessions stay out of /tmp/ray.
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "RAY_ADDRESS")}
    os.environ["RAY_TMPDIR"] = str(short_tmp)
    os.environ.pop("RAY_ADDRESS", None)
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "dashboard_agent_listen_port": free_port()})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        yield cluster, workers
    finally:
        ray.shutdown()
        cluster.shutdown()  # kills each node's own processes (by PID), never `ray stop`
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def space(tmp_path, variants) -> str:
    body = {"study": "replicate", "seeds": [0, 1], "reference": variants[0]["name"], "variants": variants,
            "resources": {"workers": 0, "cpus_per_worker": 1}}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def sweep(cluster, tmp_path, variants, *overrides) -> int:
    return run.main(["--space", space(tmp_path, variants), "--storage", str(tmp_path / "sweeps"), "--name", "mn",
                     "--smoke-test", "--wandb", "off", "--no-report", "--address", cluster.address,
                     "num_embeddings=2", *overrides])


def results(tmp_path) -> pd.DataFrame:
    return ResultsStore(str(tmp_path / "sweeps" / "mn")).read()


def assert_each_cell_and_seed_once_ok(frame: pd.DataFrame, expected: int):
    assert len(frame) == expected, frame[["variant", "seed", "status"]]
    assert set(frame["status"]) == {"ok"}, frame[["variant", "seed", "status", "error"]]
    assert not frame.duplicated(["cell", "seed"]).any()


def test_trials_spread_over_the_worker_nodes(cluster, tmp_path):
    cluster, workers = cluster
    assert sweep(cluster, tmp_path, VARIANTS[:2]) == 0
    frame = results(tmp_path)
    assert_each_cell_and_seed_once_ok(frame, 4)
    worker_ids = {node.node_id for node in workers}
    assert set(frame["node_id"]) <= worker_ids  # the head has no CPU for trials
    assert frame["node_id"].nunique() == 2, frame[["variant", "seed", "node_id"]]


def test_losing_a_node_mid_sweep_retries_its_trial_and_loses_no_row(cluster, tmp_path):
    cluster, workers = cluster
    killed: dict = {}
    problems: list[str] = []

    def kill_a_node_mid_trial():
        """Remove a worker node (not the one the driver is attached to) while a trial runs there:
        its CPU has been taken for 1.5 s and no row of its has landed in that time."""
        deadline = time.time() + 240
        victim, since, rows_seen = None, None, 0
        while time.time() < deadline:
            time.sleep(0.1)
            if not ray.is_initialized():
                continue
            if victim is None:
                driver = ray._private.worker.global_worker.node._raylet_socket_name
                victim = next(n for n in reversed(workers) if n._raylet_socket_name != driver)
            per_node = ray._private.state.available_resources_per_node()
            if victim.node_id not in per_node:
                problems.append(f"victim {victim.node_id} is not among the nodes {sorted(per_node)}")
                return
            try:
                stored = results(tmp_path)
            except OSError:  # a row file renamed while listed
                continue
            rows = 0 if stored.empty else int((stored["node_id"] == victim.node_id).sum())
            busy = per_node[victim.node_id].get("CPU", 0.0) < 1.0  # no "CPU" key when none is free
            if not busy or rows != rows_seen or since is None:
                since, rows_seen = (time.time() if busy else None), rows
                continue
            if time.time() - since > 1.5:
                killed.update(node_id=victim.node_id, rows_before=rows)
                try:
                    cluster.remove_node(victim)
                except Exception as exc:  # noqa: BLE001 - reported below
                    problems.append(repr(exc))
                return
        problems.append("no trial ran on a removable node within 240 s")

    def guarded():
        try:
            kill_a_node_mid_trial()
        except Exception as exc:  # noqa: BLE001 - reported below
            problems.append(repr(exc))

    killer = threading.Thread(target=guarded, daemon=True)
    killer.start()
    # 12 epochs (no early stopping): seconds per trial, so the node dies in the middle of one.
    assert sweep(cluster, tmp_path, VARIANTS, "epochs=12", "patience=12") == 0
    killer.join(timeout=30)
    assert killed and not problems, problems

    frame = results(tmp_path)
    assert_each_cell_and_seed_once_ok(frame, 6)  # nothing lost, nothing stored twice
    assert int((frame["node_id"] == killed["node_id"]).sum()) == killed["rows_before"]
    # The attempt that died with its node failed, and was retried to success (Tune appends each
    # failed attempt of a trial to its error.txt; every trial ended ok above).
    errors = [Path(p).read_text() for p in glob.glob(str(tmp_path / "sweeps" / "mn" / "tune-*" / "*" / "error.txt"))]
    assert any("node has died" in text for text in errors), errors or "no trial attempt failed"
