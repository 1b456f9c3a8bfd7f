import torch

from model.nets.adasparse import BETA, EPSILON, Pruner
from nets_toys import toy_batch, toy_model


def test_the_weighting_factor_is_beta_sigmoid_zeroed_below_epsilon():
    pruner = Pruner(domain_dim=2, width=3)
    with torch.no_grad():
        pruner.linear.weight.zero_()
        pruner.linear.bias.copy_(torch.tensor([[[0.0, -10.0, 2.0]]]))
    pi = pruner(torch.randn(4, 2), torch.randn(4, 3))
    expected = torch.tensor([BETA * 0.5, 0.0, BETA * torch.sigmoid(torch.tensor(2.0)).item()])
    assert torch.allclose(pi, expected.expand(4, 3))
    assert BETA * torch.sigmoid(torch.tensor(-10.0)) < EPSILON  # hence exactly 0 above


def test_the_pruner_reads_the_stop_gradient_of_the_layer_input():
    pruner = Pruner(domain_dim=2, width=3)
    domain, h = torch.randn(4, 2, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    h_grad, domain_grad = torch.autograd.grad(pruner(domain, h).sum(), [h, domain], allow_unused=True)
    assert h_grad is None or h_grad.abs().sum() == 0
    assert domain_grad.abs().sum() > 0


def test_the_sparsity_penalty_pulls_until_the_target_is_reached():
    model = toy_model("adasparse", sparsity_weight=0.5, sparsity_target=0.3)
    features, domains, _ = toy_batch(16)
    out = model(features, domains)
    h = model.embedding(features)[0]
    d = model.domain_embedding(domains.unsqueeze(1))[0]
    first = model.pruners[0](d, h)
    assert (first == 0).float().mean() < 0.3  # a fresh model prunes little: every layer is pulled
    assert out.penalty > 0
    with torch.no_grad():  # every factor of every layer zero: sparsity 1 >= target, no pull
        for pruner in model.pruners:
            pruner.linear.bias.fill_(-20.0)
            pruner.linear.weight.zero_()
    assert model(features, domains).penalty == 0
