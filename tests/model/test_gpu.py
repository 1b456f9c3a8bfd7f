"""GPU checks: run on a CUDA machine with `python -m pytest -m gpu tests/model/test_gpu.py`.

Without CUDA these are reported as skipped with that instruction (never silently passed).
"""
import pytest
import torch

from model.config import RunConfig
from model.train import SMOKE_OVERRIDES, train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: run `pytest -m gpu` on a GPU box")]


def test_cuda_training_matches_cpu_closely(tiny):
    config = RunConfig().with_overrides({**SMOKE_OVERRIDES, "epochs": 2})
    cpu = train(config, tiny, device="cpu")
    gpu = train(config, tiny, device="cuda")
    assert gpu.metrics["test_auc_overall"] == pytest.approx(cpu.metrics["test_auc_overall"], abs=0.02)


def test_bf16_and_compile_train(tiny):
    config = RunConfig().with_overrides({**SMOKE_OVERRIDES, "epochs": 2, "bf16": True, "compile": True})
    result = train(config, tiny, device="cuda")
    assert result.metrics["test_auc_overall"] > 0.5 and result.samples_per_s > 0


@pytest.mark.parametrize("architecture", ["single_domain", "shared_bottom", "mmoe", "ple", "stem", "pepnet", "hinet",
                                          "star", "adasparse"])
def test_every_architecture_trains_on_cuda_like_on_cpu_and_compiles(tiny, architecture):
    config = RunConfig().with_overrides({**SMOKE_OVERRIDES, "epochs": 2, "architecture": architecture})
    cpu = train(config, tiny, device="cpu")
    gpu = train(config, tiny, device="cuda")
    domain = "S1" if architecture == "single_domain" else "overall"
    assert gpu.metrics[f"test_auc_{domain}"] == pytest.approx(cpu.metrics[f"test_auc_{domain}"], abs=0.02)
    compiled = train(config.with_overrides({"bf16": True, "compile": True}), tiny, device="cuda")
    assert compiled.metrics[f"test_auc_{domain}"] > 0.5
