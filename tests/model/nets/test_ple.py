import pytest
import torch

from model.config import RunConfig
from model.nets.ple import split_widths
from nets_toys import toy_batch, toy_model


def test_a_domains_gate_mixes_its_own_and_the_shared_experts_only():
    model = toy_model("ple", ple_levels=1, specific_experts=2, shared_experts=1, norm="none")
    level = model.levels[0]
    with torch.no_grad():  # domain 2's gate: weights 1/6, 2/6, 3/6 on its 2 experts and the shared one
        level.domain_gates.linear.weight.zero_()
        level.domain_gates.linear.bias[2, 0] = torch.log(torch.tensor([1.0, 2.0, 3.0]))
    features, _, _ = toy_batch(4)
    domains = torch.full((4,), 2)
    captured = {}
    model.towers.register_forward_pre_hook(lambda module, args: captured.update(mixed=args[0]))
    out = model(features, domains)
    experts = out.expert_outputs  # (7, B, D): domain 0's two, domain 1's two, domain 2's two, shared
    assert experts.shape[0] == 7
    expected = (experts[4] + 2 * experts[5] + 3 * experts[6]) / 6
    assert torch.allclose(captured["mixed"], expected, atol=1e-6)
    assert torch.allclose(out.gates, torch.tensor([0, 0, 0, 0, 1 / 6, 2 / 6, 3 / 6]).expand(4, 7), atol=1e-6)


@pytest.mark.parametrize("levels,reaches", [(1, False), (2, True)])
def test_other_domains_experts_reach_a_row_only_through_the_shared_path_of_a_later_level(levels, reaches):
    model = toy_model("ple", ple_levels=levels, norm="none")
    model.eval()
    features, _, _ = toy_batch(8)
    domains = torch.zeros(8, dtype=torch.int64)
    before = model(features, domains).logits
    with torch.no_grad():  # domain 1's expert of the first level
        model.levels[0].experts.linears[0].bias[1] += 3.0
    after = model(features, domains).logits
    assert (not torch.allclose(before, after)) == reaches


def test_levels_split_the_expert_widths():
    assert split_widths((128, 64), 2) == [(128,), (64,)]
    assert split_widths((256, 128, 64), 2) == [(256, 128), (64,)]
    model = toy_model("ple", expert_hidden=(8, 6, 5), ple_levels=3)
    assert [lvl.experts.linears[0].weight.shape[-1] for lvl in model.levels] == [8, 6, 5]
    with pytest.raises(ValueError, match="ple_levels must be <= the 2 widths"):
        RunConfig().with_overrides({"architecture": "ple", "ple_levels": 3})


def test_me_ple_has_a_set_per_domain_and_a_shared_one():
    model = toy_model("ple", embedding="ME")
    assert model.embedding.num_sets == 4
    assert torch.isfinite(model(*toy_batch()[:2]).logits).all()
