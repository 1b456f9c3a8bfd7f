import math

import pytest
import torch

from model.architectures import ModelConfig, build_model
from model.config import RunConfig
from nets_toys import PRIOR, SMALL, VOCAB, toy_batch, toy_model


def test_mmoe_is_the_crocodile_module_with_standard_gating():
    mmoe = toy_model("mmoe", num_embeddings=3)
    same = toy_model("crocodile", embedding="SE", gating="standard", aux_loss="none", num_embeddings=3)
    features, domains, _ = toy_batch()
    assert torch.equal(mmoe(features, domains).logits, same(features, domains).logits)
    with pytest.raises(ValueError, match="Crocodile module with standard gating.*use architecture=crocodile"):
        RunConfig().with_overrides({"architecture": "mmoe", "gating": "peg"})


def test_the_mixture_is_the_softmax_gate_weighted_sum_of_the_experts():
    model = toy_model("mmoe", num_embeddings=3, norm="none")
    with torch.no_grad():  # gate of domain 1: logits log(1), log(2), log(5) whatever the input
        model.gates.out.weight.zero_()
        model.gates.out.bias[1] = torch.log(torch.tensor([1.0, 2.0, 5.0]))
    features, _, _ = toy_batch(4)
    domains = torch.ones(4, dtype=torch.int64)
    captured = {}
    model.towers.register_forward_pre_hook(lambda module, args: captured.update(mixed=args[0]))
    out = model(features, domains)
    assert torch.allclose(out.gates, torch.tensor([[0.125, 0.25, 0.625]]).expand(4, 3))
    expected = 0.125 * out.expert_outputs[0] + 0.25 * out.expert_outputs[1] + 0.625 * out.expert_outputs[2]
    assert torch.allclose(captured["mixed"], expected, atol=1e-6)


def test_me_mmoe_ties_the_sets_to_the_domains():
    config = RunConfig().with_overrides({"architecture": "mmoe", "embedding": "ME", "num_embeddings": 2, **SMALL})
    with pytest.raises(ValueError, match="num_embeddings must be >= the 3 domains"):
        build_model(config.model, vocab_sizes=VOCAB, num_domains=3, prior_fields=PRIOR)
    assert math.isfinite(toy_model("mmoe", embedding="ME", num_embeddings=3)(*toy_batch()[:2]).logits.sum().item())
    assert ModelConfig.defaults("mmoe").embedding == "SE"
