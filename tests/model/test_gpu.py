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


def test_the_training_step_never_waits_for_the_host(tiny):
    """Forward, eq. 7 loss, aux loss, backward and Adam under CUDA's sync debug mode: any host sync raises."""
    from model.data import shuffled_batches
    from model.losses import aux_loss, task_loss
    from model.train import model_for

    config = RunConfig().with_overrides(SMOKE_OVERRIDES)
    model = model_for(config, tiny).to("cuda")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rows = tiny.subset("train").to("cuda")
    batches = list(shuffled_batches(len(rows), 512, torch.Generator().manual_seed(0), "cuda"))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for idx in batches[:3]:
            batch = rows.rows(idx)
            out = model(batch.features, batch.domains)
            loss = task_loss(out.logits, batch.labels, batch.domains, tiny.num_domains)
            loss = loss + config.model.alpha * aux_loss("cov", out.expert_outputs, out.gates, 256)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_seed_batched_training_on_cuda_eager_and_compiled(tiny):
    from model.seed_batch import train_seeds

    config = RunConfig().with_overrides({**SMOKE_OVERRIDES, "epochs": 2})
    alone = train(config.with_overrides({"seed": 1}), tiny, device="cuda")
    for compile_step in (False, True):
        batched = train_seeds(config.with_overrides({"compile": compile_step}), tiny, (0, 1, 2), device="cuda")
        assert all(not isinstance(r, BaseException) for r in batched.values())
        assert batched[1].metrics["test_auc_overall"] == pytest.approx(alone.metrics["test_auc_overall"], abs=0.02)
