import torch

from model.nets.pepnet import GATE_SCALE, GateUnit
from nets_toys import toy_batch, toy_model


def test_the_gate_unit_is_two_times_a_sigmoid():
    unit = GateUnit(in_dim=3, out_dim=2)
    x = torch.randn(5, 3)
    with torch.no_grad():
        unit.mlp.out.weight.zero_()
        unit.mlp.out.bias.zero_()
    assert torch.equal(unit(x), torch.ones(5, 2))  # 2 * sigmoid(0)
    with torch.no_grad():
        unit.mlp.out.bias[0, 0, 0] = 1.5
    assert torch.allclose(unit(x)[:, 0], GATE_SCALE * torch.sigmoid(torch.tensor(1.5)).expand(5))
    assert GATE_SCALE == 2.0


def test_epnet_and_ppnet_gates_do_not_train_what_they_scale():
    model = toy_model("pepnet")
    features, domains, _ = toy_batch(16)
    general = model.embedding(features)[0]
    domain = model.domain_embedding(domains.unsqueeze(1))[0]
    delta = model.epnet(torch.cat([domain, general.detach()], dim=-1))
    table_grad, domain_grad = torch.autograd.grad(delta.sum(), [model.embedding.weight, model.domain_embedding.weight],
                                                  allow_unused=True)
    assert table_grad is None or table_grad.abs().sum() == 0  # sg(E): EPNet's gate does not train E
    assert domain_grad.abs().sum() > 0
    # PPNet's gates read sg(O_ep): their outputs have no gradient path into EPNet.
    captured = []
    for gate in model.ppnet:
        gate.register_forward_hook(lambda module, args, output: captured.append(output))
    model(features, domains)
    grads = torch.autograd.grad(sum(c.sum() for c in captured), list(model.epnet.parameters()), allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads)
