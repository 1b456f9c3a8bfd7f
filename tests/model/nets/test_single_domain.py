import torch

from model.losses import task_loss
from nets_toys import toy_batch, toy_model


def test_a_domains_loss_trains_only_that_domains_model():
    model = toy_model("single_domain", norm="batch")
    features, domains, labels = toy_batch(64)
    out = model(features, domains)
    mine = domains == 0
    task_loss(out.logits[mine], labels[mine], domains[mine], 3).backward()
    d = 4  # embedding_dim: set s holds columns [s*d, (s+1)*d)
    table = model.embedding.weight.grad
    assert table[:, d:].abs().sum() == 0 and table[:, :d].abs().sum() > 0
    for linear in (*model.networks.linears, model.networks.out):
        assert linear.weight.grad[:, 1:].abs().sum() == 0 and linear.bias.grad[1:].abs().sum() == 0
        assert linear.weight.grad[:, 0].abs().sum() > 0
    for norm in model.networks.norms:
        assert norm.weight.grad[1:].abs().sum() == 0


def test_a_domains_predictions_ignore_the_other_domains_rows_even_with_batch_statistics():
    model = toy_model("single_domain", norm="batch")
    features, domains, _ = toy_batch(64)
    logits = model(features, domains).logits
    other = domains != 0
    shuffled = features.clone()
    shuffled[other] = toy_batch(64, seed=5)[0][other]  # change every other domain's rows
    again = model(shuffled, domains).logits
    assert torch.allclose(logits[~other], again[~other], atol=1e-6)
