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
    # With the dashboard, as on a real head: Train V2 cleans up the placement group of a trial whose
    # driver was lost through it (without, the lost trial's workers keep their CPUs).
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": free_port(),
        "dashboard_agent_listen_port": free_port()})
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


def space(tmp_path, variants, resources: dict | None = None, seeds=(0, 1)) -> str:
    body = {"study": "replicate", "seeds": list(seeds), "reference": variants[0]["name"], "variants": variants,
            "resources": resources or {"workers": 0, "cpus_per_worker": 1}}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


def sweep(cluster, tmp_path, variants, *overrides, resources: dict | None = None, seeds=(0, 1)) -> int:
    return run.main(["--space", space(tmp_path, variants, resources, seeds), "--storage", str(tmp_path / "sweeps"),
                     "--name", "mn", "--smoke-test", "--wandb", "off", "--no-report", "--address", cluster.address,
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


class NodeKiller:
    """Removes a worker node (not the one the driver is attached to) while a trial runs there: its
    CPU has been taken for `busy_s` and no row of its has landed in that time."""

    def __init__(self, cluster, workers, tmp_path, busy_s: float = 1.5, ready=lambda: True):
        self.cluster, self.workers, self.tmp_path, self.busy_s = cluster, workers, tmp_path, busy_s
        self.ready = ready  # kill only once this holds (e.g. a checkpoint exists)
        self.killed: dict = {}
        self.problems: list[str] = []
        self.thread = threading.Thread(target=self._guarded, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(timeout=30)

    def _guarded(self):
        try:
            self._kill()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.problems.append(repr(exc))

    def _kill(self):
        deadline = time.time() + 240
        victim, since, rows_seen = None, None, 0
        while time.time() < deadline:
            time.sleep(0.1)
            if not ray.is_initialized():
                continue
            if victim is None:
                driver = ray._private.worker.global_worker.node._raylet_socket_name
                victim = next(n for n in reversed(self.workers) if n._raylet_socket_name != driver)
            per_node = ray._private.state.available_resources_per_node()
            if victim.node_id not in per_node:
                self.problems.append(f"victim {victim.node_id} is not among the nodes {sorted(per_node)}")
                return
            try:
                stored = results(self.tmp_path)
            except OSError:  # a row file renamed while listed
                continue
            rows = 0 if stored.empty else int((stored["node_id"] == victim.node_id).sum())
            busy = per_node[victim.node_id].get("CPU", 0.0) < 1.0  # no "CPU" key when none is free
            if not busy or rows != rows_seen or since is None:
                since, rows_seen = (time.time() if busy else None), rows
                continue
            if time.time() - since > self.busy_s and self.ready():
                self.killed.update(node_id=victim.node_id, rows_before=rows)
                self.cluster.remove_node(victim)
                return
        self.problems.append("no trial ran on a removable node within 240 s")


def test_losing_a_node_mid_sweep_retries_its_trial_and_loses_no_row(cluster, tmp_path):
    cluster, workers = cluster
    # 12 epochs (no early stopping): seconds per trial, so the node dies in the middle of one.
    with NodeKiller(cluster, workers, tmp_path) as killer:
        assert sweep(cluster, tmp_path, VARIANTS, "epochs=12", "patience=12") == 0
    assert killer.killed and not killer.problems, killer.problems

    frame = results(tmp_path)
    assert_each_cell_and_seed_once_ok(frame, 6)  # nothing lost, nothing stored twice
    assert int((frame["node_id"] == killer.killed["node_id"]).sum()) == killer.killed["rows_before"]
    # The attempt that died with its node failed, and was retried to success (Tune appends each
    # failed attempt of a trial to its error.txt; every trial ended ok above), from its checkpoint.
    errors = [Path(p).read_text() for p in glob.glob(str(tmp_path / "sweeps" / "mn" / "tune-*" / "*" / "error.txt"))]
    assert any("node has died" in text or "ActorDiedError" in text for text in errors), errors or "no attempt failed"


def test_losing_a_node_under_a_ray_train_trial_loses_no_row(cluster, tmp_path):
    cluster, workers = cluster
    workers[:] = [w for w in workers if w in cluster.worker_nodes]  # remove_node drops a node from it
    while len(workers) < 2:  # an earlier test removed one
        workers.append(cluster.add_node(num_cpus=1))
    cluster.wait_for_nodes()
    # The Ray Train path: a 0.2-CPU trial driver + one 0.5-CPU DDP worker, so a trial fits on either
    # one-CPU node; the node that goes holds the driver, the worker or both. Train restarts a lost
    # worker group from the trial's last checkpoint, Tune a lost trial driver (whose new Train run
    # finds the same run's checkpoints).
    checkpoints, first_seen = str(tmp_path / "sweeps" / "mn" / "train" / "train-*" / "checkpoint_*"), []

    def checkpointed() -> bool:
        """A checkpoint folder appeared 2 s ago (by then it is uploaded and registered)."""
        if not first_seen and glob.glob(checkpoints):
            first_seen.append(time.time())
        return bool(first_seen) and time.time() - first_seen[0] > 2

    with NodeKiller(cluster, workers, tmp_path, busy_s=0.5, ready=checkpointed) as killer:
        assert sweep(cluster, tmp_path, VARIANTS[:1], "epochs=12", "patience=12", seeds=(0,),
                     resources={"workers": 1, "cpus_per_worker": 0.5}) == 0
    assert killer.killed and not killer.problems, killer.problems
    frame = results(tmp_path)
    assert_each_cell_and_seed_once_ok(frame, 1)
    assert set(frame["path"]) == {"ray_train"} and frame["epochs_run"].tolist() == [12]
    assert frame["resumed_from_epoch"].iloc[0] >= 1  # from its checkpoint, not from epoch 1
