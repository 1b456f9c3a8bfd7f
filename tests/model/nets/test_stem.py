import torch

from model.losses import task_loss
from nets_toys import toy_batch, toy_model


def test_domain_s_loss_has_exactly_zero_gradient_on_domain_t_specific_embedding():
    model = toy_model("stem", norm="batch")
    features, domains, labels = toy_batch(64)
    out = model(features, domains)
    mine = domains == 0
    task_loss(out.logits[mine], labels[mine], domains[mine], 3).backward()
    grad = model.embedding.weight.grad  # sets 0, 1, 2 (domains) and 3 (shared), 4 columns each
    assert grad[:, 4:12].abs().sum() == 0  # domains 1 and 2: exactly zero
    assert grad[:, 0:4].abs().sum() > 0 and grad[:, 12:16].abs().sum() > 0  # own and shared sets
    experts = model.experts.linears[0].weight.grad  # (E, in, H): experts of domains 0, 1, 2, shared
    assert experts[1:3].abs().sum() == 0 and experts[0].abs().sum() > 0 and experts[3].abs().sum() > 0


def test_all_forward_the_other_domains_experts_still_shape_the_prediction():
    model = toy_model("stem", norm="none")
    features, _, _ = toy_batch(8)
    domains = torch.zeros(8, dtype=torch.int64)
    out = model(features, domains)
    assert (out.gates[:, 1:3] > 0).all()  # the gate of domain 0 weighs domains 1 and 2's experts
    before = out.logits
    with torch.no_grad():
        model.experts.linears[-1].bias[1] += 2.0  # domain 1's expert
    assert not torch.allclose(before, model(features, domains).logits)
