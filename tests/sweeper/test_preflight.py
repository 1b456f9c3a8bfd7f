"""Pre-flight checks on hand-checkable inputs: names against the data, resources against a cluster."""
import pytest

from model.datasets import DataInfo, describe_data
from sweeper.errors import describe, is_infrastructure, root_cause
from sweeper.preflight import ClusterShape, Node, ResourceError, check_names, concurrency, max_concurrent
from sweeper.space import Resources, parse_space

SYNTHETIC = describe_data("synthetic:tiny")
NO_PRIOR = DataInfo("parquet:/x.parquet", "x", ("A", "B"), ("f1", "f2"), False, 10)


def space(**extra):
    body = {"study": "replicate", "seeds": [0], "variants": [{"name": "MMoE", "set": {"gating": "standard"}}], **extra}
    return parse_space(body, "s.yaml")


def test_monitors_and_objectives_must_name_the_datas_domains():
    check_names(space(), {"monitor": "val_gauc_S6"}, SYNTHETIC)
    check_names(space(), {"monitor": "val_logloss_B"}, NO_PRIOR)
    with pytest.raises(ValueError, match=r"s.yaml: variant 'MMoE': monitor: 'val_auc_S9' names domain 'S9', which "
                                         r"synthetic:tiny does not have; its domains: \['overall', 'S0'"):
        check_names(space(), {"monitor": "val_auc_S9"}, SYNTHETIC)
    with pytest.raises(ValueError, match=r"variant 'MMoE': monitor: 'val_auc_S0' names domain 'S0'"):
        check_names(space(), {"monitor": "val_auc_S0"}, NO_PRIOR)

    def search(metric):
        return parse_space({"study": "search", "seeds": [0], "search": {
            "metric": metric, "params": {"gating": {"type": "choice", "values": ["standard", "pg"]}}}}, "q.yaml")
    with pytest.raises(ValueError, match=r"q.yaml: search.metric: 'val_auc_S7' names domain 'S7'"):
        check_names(search("val_auc_S7"), {}, SYNTHETIC)
    with pytest.raises(ValueError, match=r"'val_bayesauc_overall' is not a validation metric of parquet:/x.parquet"):
        check_names(search("val_bayesauc_overall"), {"monitor": "val_auc_A"}, NO_PRIOR)
    check_names(search("val_bayesauc_overall"), {}, SYNTHETIC)  # synthetic data knows the planted truth


def test_prior_gating_needs_the_prior_fields():
    with pytest.raises(ValueError, match=r"gating 'peg' needs the prior fields .* lacks \['user_id'"):
        check_names(space(variants=[{"name": "C", "set": {"gating": "peg"}}]), {"monitor": "val_auc_A"}, NO_PRIOR)


@pytest.mark.parametrize("resources, nodes, expected", [
    # workers: 0, one CPU each: as many trials as CPUs.
    (Resources(workers=0, cpus_per_worker=1), [Node(2)], 2),
    (Resources(workers=0, cpus_per_worker=0.5), [Node(1), Node(1)], 4),
    # Ray Train on 2 CPUs, 1 worker x 1 CPU: 0.2 + 1 = 1.2 CPU a trial, so 1 at a time (6 drivers at
    # 0.2 CPU each would hold the CPUs their workers wait for).
    (Resources(workers=1, cpus_per_worker=1), [Node(2)], 1),
    (Resources(workers=1, cpus_per_worker=0.4), [Node(2)], 3),  # 3 x 0.6 = 1.8 <= 2
    (Resources(workers=2, cpus_per_worker=0.5), [Node(1), Node(1)], 1),  # 1.2 a trial; 4 worker slots
    # GPUs: a 0.25-GPU trial packs four to a GPU; worker nodes only.
    (Resources(workers=0, cpus_per_worker=2, gpus_per_worker=0.25), [Node(8), Node(48, 4)], 16),
    (Resources(workers=1, cpus_per_worker=2, gpus_per_worker=0.25), [Node(48, 4)], 16),
])
def test_concurrency_fits_drivers_and_workers_together(resources, nodes, expected):
    shape = ClusterShape(tuple(nodes))
    assert max_concurrent(resources, shape) == expected
    assert concurrency(resources, shape) == expected and concurrency(resources, shape, requested=1) == 1


def test_infeasible_resources_are_refused_with_the_arithmetic():
    with pytest.raises(ResourceError, match=r"one Ray Train trial needs 0.2 CPU for its driver \+ 1 worker\(s\) x "
                                            r"\(4 CPU\) = 4.2 CPU, but the cluster has 1 node\(s\), 2 CPU and 0 GPU "
                                            r"in all, at most 2 CPU / 0 GPU on one node: no trial can ever start"):
        concurrency(Resources(workers=1, cpus_per_worker=4), ClusterShape((Node(2),)))
    with pytest.raises(ResourceError, match=r"one trial needs 1 CPU \+ 0.25 GPU on one node"):
        concurrency(Resources(workers=0, cpus_per_worker=1, gpus_per_worker=0.25), ClusterShape((Node(2),)))
    # An autoscaler that may add GPU nodes makes it feasible (trials wait for the scale-up, not forever).
    assert concurrency(Resources(workers=0, cpus_per_worker=1, gpus_per_worker=0.25),
                       ClusterShape((Node(2),), may_add=(Node(48, 4),) * 2)) == 32


def test_stored_errors_start_with_the_root_cause_and_only_infrastructure_is_retried():
    import ray.exceptions

    try:
        raise FileNotFoundError("dataset file '/nonexistent.parquet' does not exist")
    except FileNotFoundError as exc:
        wrapped = ray.exceptions.RayTaskError("ImplicitFunc.train", "\x1b[36mray::ImplicitFunc.train()\x1b[39m", exc)
    text = describe(wrapped)
    assert text.startswith("FileNotFoundError: dataset file '/nonexistent.parquet' does not exist\n")
    assert "\x1b" not in text and "test_preflight.py" in text and isinstance(root_cause(wrapped), FileNotFoundError)
    assert not is_infrastructure(wrapped) and not is_infrastructure(FloatingPointError("loss is nan"))
    assert is_infrastructure(ray.exceptions.ActorDiedError()) and is_infrastructure(ray.exceptions.NodeDiedError("n"))
    assert is_infrastructure(RuntimeError("[../gloo/transport/tcp/pair.cc:534] Connection closed by peer"))
