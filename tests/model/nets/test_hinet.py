import torch

from nets_toys import toy_batch, toy_model


def test_the_tower_reads_shared_own_and_attention_over_the_other_domains():
    model = toy_model("hinet", norm="none", specific_experts=2, shared_experts=2)
    with torch.no_grad():  # SAN: domain 0 attends to domains 1 and 2 with weights 1/4 and 3/4
        model.attention.weight.zero_()
        model.attention.bias[0, 0] = torch.log(torch.tensor([7.0, 1.0, 3.0]))
    features, _, _ = toy_batch(5)
    domains = torch.zeros(5, dtype=torch.int64)
    captured = {}
    model.towers.register_forward_pre_hook(lambda module, args: captured.update(c=args[0]))
    out = model(features, domains)
    x = model.embedding(features)
    sub = out.expert_outputs  # (8, B, D): domains 0, 1, 2 two each, then two shared
    specific_w = model.specific_gates(x.expand(3, -1, -1))  # (S, B, 2)
    per_domain = [specific_w[t, :, :1] * sub[2 * t] + specific_w[t, :, 1:] * sub[2 * t + 1] for t in range(3)]
    shared_w = model.shared_gate(x)[0]
    shared = shared_w[:, :1] * sub[6] + shared_w[:, 1:] * sub[7]
    expected = torch.cat([shared, per_domain[0], 0.25 * per_domain[1] + 0.75 * per_domain[2]], dim=-1)
    assert torch.allclose(captured["c"], expected, atol=1e-6)
    assert torch.allclose(out.gates.sum(dim=1), torch.ones(5))
