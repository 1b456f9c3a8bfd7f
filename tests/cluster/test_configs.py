"""Every file under cluster/ is checked offline: launcher YAMLs by Ray's own config preparation and
schema validation (what `ray up` runs before it contacts a cloud), the KubeRay manifest for the
fields KubeRay needs, the shell scripts for syntax, and all of them for the security rules (token
auth, dashboard on localhost, no secrets in files, never `ray stop`)."""
from __future__ import annotations

import copy
import re
import shlex
import subprocess

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from cluster_helpers import REPO
from sweeper import run

CLUSTER = REPO / "cluster"
YAMLS = sorted(CLUSTER.glob("*.yaml"))
LAUNCHER = [p for p in YAMLS if "provider" in yaml.safe_load(p.read_text())]
KUBERAY = [p for p in YAMLS if yaml.safe_load(p.read_text()).get("apiVersion", "").startswith("ray.io/")]
SCRIPTS = sorted(CLUSTER.glob("*.sh")) + [REPO / ".ci" / "cluster_e2e.sh"]
COMMAND_LISTS = ("initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
                 "head_start_ray_commands", "worker_start_ray_commands")


def names(paths):
    return [p.name for p in paths]


def load(path):
    return yaml.safe_load(path.read_text())


def commands(cfg: dict, *lists: str) -> list[str]:
    return [c for key in (lists or COMMAND_LISTS) for c in cfg.get(key) or []]


def test_every_yaml_is_a_launcher_config_or_a_kuberay_manifest():
    assert {p.name for p in YAMLS} == {p.name for p in LAUNCHER + KUBERAY}
    assert {"gpu.yaml", "local.yaml"} <= set(names(LAUNCHER)) and "kuberay-rayjob.yaml" in names(KUBERAY)


@pytest.mark.parametrize("path", LAUNCHER, ids=names(LAUNCHER))
def test_launcher_config_passes_rays_own_validation(path):
    raw = load(path)
    config = prepare_config(copy.deepcopy(raw))  # defaults merged, node types filled in
    validate_config(config)  # ray-schema.json + the launcher's own consistency checks
    assert config["head_node_type"] in config["available_node_types"]
    if raw["provider"]["type"] == "local":
        # The local provider's whole bootstrap is offline: run exactly what `ray up` runs.
        from ray.autoscaler._private.commands import _bootstrap_config

        bootstrapped = _bootstrap_config(copy.deepcopy(raw), no_config_cache=True)
        validate_config(bootstrapped)


@pytest.mark.parametrize("path", LAUNCHER, ids=names(LAUNCHER))
def test_launcher_config_is_secure_and_never_runs_ray_stop(path):
    cfg = load(path)
    every = commands(cfg)
    assert not [c for c in every if re.search(r"\bray stop\b", c)]
    (head,) = cfg["head_start_ray_commands"]
    assert "cluster/ray-node.sh head" in head and "--dashboard-host=127.0.0.1" in head
    assert "--autoscaling-config=~/ray_bootstrap_config.yaml" in head
    assert all("cluster/ray-node.sh worker --address=$RAY_HEAD_IP:" in c for c in cfg["worker_start_ray_commands"])
    # Token auth and the W&B key come from ray-env.sh, hooked into every node's ~/.bashrc (the
    # shell of `ray submit` / `ray exec`); the secrets come from file_mounts, not from this file.
    assert any("cluster/ray-env.sh" in c and "~/.bashrc" in c for c in cfg["setup_commands"])
    env = (CLUSTER / "ray-env.sh").read_text()
    assert "export RAY_AUTH_MODE=token" in env and "RAY_AUTH_TOKEN_PATH=" in env  # set by us, not Ray's default
    assert cfg["file_mounts"] == {"~/crocodile-sweeps": ".", "~/.crocodile/secrets": "~/.crocodile/secrets"}
    assert_no_secrets(path)


@pytest.mark.parametrize("path", LAUNCHER, ids=names(LAUNCHER))
def test_launcher_config_installs_torch_then_the_project(path):
    cfg = load(path)
    for role in ("head", "worker"):
        steps = commands(cfg, "setup_commands", f"{role}_setup_commands")
        torch = [i for i, c in enumerate(steps) if "torch==" in c]
        project = [i for i, c in enumerate(steps) if "-e ~/crocodile-sweeps" in c]
        assert torch and project and max(torch) < min(project), steps
        assert any("ray[default,tune,train]==" in c for c in steps)  # one ray version on every node


def test_gpu_yaml_has_a_cpu_head_and_autoscaling_spot_gpu_workers():
    cfg = load(CLUSTER / "gpu.yaml")
    assert cfg["provider"]["type"] == "aws"
    types = cfg["available_node_types"]
    head = types[cfg["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu_types = {name: t for name, t in types.items() if t["resources"].get("GPU", 0) > 0}
    assert gpu_types
    for node_type in gpu_types.values():
        assert 0 <= node_type["min_workers"] < node_type["max_workers"] <= cfg["max_workers"]
        assert node_type["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert gpu_types["gpu"]["node_config"]["InstanceType"] == "g5.12xlarge"
    assert gpu_types["gpu"]["resources"] == {"CPU": 48, "GPU": 4}
    # No inbound rule beyond the launcher's defaults (SSH + node-to-node).
    assert not cfg["provider"].get("security_group", {}).get("IpPermissions")


def test_local_yaml_names_the_machines_and_the_ssh_login():
    cfg = load(CLUSTER / "local.yaml")
    provider, auth = cfg["provider"], cfg["auth"]
    assert provider["type"] == "local" and provider["head_ip"] and isinstance(provider["worker_ips"], list)
    assert auth["ssh_user"] and auth["ssh_private_key"]


@pytest.mark.parametrize("path", KUBERAY, ids=names(KUBERAY))
def test_kuberay_manifest_has_what_kuberay_needs(path):
    job = load(path)
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob" and job["metadata"]["name"]
    spec = job["spec"]
    assert spec["shutdownAfterJobFinishes"] is True
    entrypoint = shlex.split(spec["entrypoint"])
    assert entrypoint[:2] == ["python", "sweeper/run.py"]
    run.plan(run.parse_args(entrypoint[2:]))  # the arguments name a real space and profile
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"].startswith("2.")
    groups = [("head", cluster["headGroupSpec"])] + [(g["groupName"], g) for g in cluster["workerGroupSpecs"]]
    for name, group in groups:
        assert isinstance(group["rayStartParams"], dict), name
        containers = group["template"]["spec"]["containers"]
        assert containers and all(c["name"] and c["image"] for c in containers), name
    gpu_groups = [g for _, g in groups[1:]
                  if int(g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu", 0)) > 0]
    assert gpu_groups
    for group in gpu_groups:
        assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"] and group["maxReplicas"] > 0
        resources = group["template"]["spec"]["containers"][0]["resources"]
        assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]
    # Token auth from a Secret (KubeRay sets RAY_AUTH_MODE / RAY_AUTH_TOKEN on every Ray container).
    assert cluster["authOptions"] == {"mode": "token", "secretName": cluster["authOptions"]["secretName"]}
    assert cluster["authOptions"]["secretName"]
    for _, group in groups:
        for container in group["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if re.search(r"TOKEN|KEY|SECRET|PASSWORD", env["name"]):
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], env
    assert_no_secrets(path)


def assert_no_secrets(path):
    text = path.read_text()
    assert not re.search(r"[A-Za-z0-9]{32,}", text), f"{path.name}: a long token-like string"
    assert not re.search(r"(RAY_AUTH_TOKEN|WANDB_API_KEY)\s*[=:]\s*['\"]?[A-Za-z0-9]", text), path.name


@pytest.mark.parametrize("path", SCRIPTS, ids=names(SCRIPTS))
def test_shell_scripts_parse(path):
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
