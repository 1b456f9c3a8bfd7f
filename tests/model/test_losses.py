import math

import pytest
import torch
import torch.nn.functional as F

from model.losses import AUX_LOSSES, aux_loss, cos_loss, cov_loss, dcorr_loss, dot_loss, importance_loss, ole_loss, task_loss


def slow_cov(outputs):
    m, b, d = outputs.shape
    total = 0.0
    for p in range(m):
        for q in range(p):
            for i in range(d):
                for j in range(d):
                    xp = outputs[p, :, i] - outputs[p, :, i].mean()
                    xq = outputs[q, :, j] - outputs[q, :, j].mean()
                    total += abs(float((xp * xq).sum()) / b)
    return total / d**2


def test_cov_loss_hand_checked():
    # Two experts, B=2, D=1: centred columns (+1,-1) and (+2,-2): cross = (2 + 2)/2 = 2.
    outputs = torch.tensor([[[1.0], [-1.0]], [[3.0], [-1.0]]])
    assert cov_loss(outputs).item() == pytest.approx(2.0)
    # Uncorrelated experts: zero.
    assert cov_loss(torch.tensor([[[1.0], [-1.0], [1.0], [-1.0]], [[1.0], [1.0], [-1.0], [-1.0]]])).item() == 0.0


def slow_dcorr(x, y):
    def centred(z):
        dist = torch.cdist(z, z)
        return dist - dist.mean(0, keepdim=True) - dist.mean(1, keepdim=True) + dist.mean()
    a, b = centred(x.double()), centred(y.double())
    return math.sqrt((a * b).mean() / math.sqrt((a * a).mean() * (b * b).mean()))


@pytest.mark.parametrize("seed", range(3))
def test_aux_losses_match_direct_formulas(seed):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(4, 7, 3, generator=g).double()
    pairs = [(p, q) for p in range(4) for q in range(p)]
    assert cov_loss(out).item() == pytest.approx(slow_cov(out))
    dot = sum(abs(float(sum(out[p, k] @ out[q, k] for k in range(7)) / 7)) for p, q in pairs)
    assert dot_loss(out).item() == pytest.approx(dot)
    cos = sum(abs(float(sum(F.cosine_similarity(out[p, k], out[q, k], dim=0) for k in range(7)) / 7)) for p, q in pairs)
    assert cos_loss(out).item() == pytest.approx(cos)
    assert dcorr_loss(out).item() == pytest.approx(sum(slow_dcorr(out[p], out[q]) for p, q in pairs), rel=1e-5)
    ole = 0.0
    for p, q in pairs:
        np_, nq = out[p] / out[p].norm(dim=0), out[q] / out[q].norm(dim=0)
        ole += float(sum((np_[:, i] @ nq[:, j]) ** 2 for i in range(3) for j in range(3)))
    assert ole_loss(out).item() == pytest.approx(ole / 9)


def test_importance_loss_is_squared_coefficient_of_variation():
    gates = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # importance (2, 0): mean 1, var 1 -> CV^2 = 1
    assert importance_loss(gates).item() == pytest.approx(1.0)
    assert importance_loss(torch.full((5, 4), 0.25)).item() == pytest.approx(0.0)


@pytest.mark.parametrize("name", sorted(AUX_LOSSES))
def test_aux_losses_are_differentiable(name):
    outputs = torch.rand(3, 16, 4, requires_grad=True)
    gate_logits = torch.randn(16, 3, requires_grad=True)
    loss = aux_loss(name, outputs, torch.softmax(gate_logits, dim=1), num_rows=8)
    if name == "none":
        assert loss.item() == 0.0
        return
    loss.backward()
    grad = gate_logits.grad if name == "importance" else outputs.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_aux_loss_uses_only_the_first_rows():
    outputs = torch.randn(3, 16, 4)
    assert aux_loss("cov", outputs, torch.ones(16, 3), 5).item() == pytest.approx(cov_loss(outputs[:, :5]).item())


def test_unknown_aux_loss():
    with pytest.raises(ValueError, match="valid"):
        aux_loss("bogus", torch.zeros(2, 2, 2), torch.zeros(2, 2), 0)


def test_single_expert_aux_losses_are_zero():
    out = torch.rand(1, 5, 3)
    for fn in (cov_loss, dot_loss, cos_loss, dcorr_loss, ole_loss):
        assert fn(out).item() == 0.0


def test_task_loss_is_sum_of_per_domain_means():
    logits = torch.tensor([0.0, 2.0, -1.0, 0.5])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    domains = torch.tensor([0, 0, 0, 2])  # domain 1 absent: contributes 0
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    expected = bce[:3].mean() + bce[3]
    assert task_loss(logits, labels, domains, 3).item() == pytest.approx(expected.item())
    assert task_loss(logits, labels, domains, 3).item() != pytest.approx(bce.mean().item())


def test_global_task_loss_weighs_every_row_the_same():
    logits = torch.tensor([0.0, 2.0, -1.0, 0.5])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    domains = torch.tensor([0, 0, 0, 2])
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    assert task_loss(logits, labels, domains, 3, "global").item() == pytest.approx(bce.mean().item())
    assert task_loss(logits, labels, domains, 3, "per_domain").item() == pytest.approx((bce[:3].mean() + bce[3]).item())


def test_task_loss_is_a_checked_config_key():
    from model.config import RunConfig

    assert RunConfig().train.task_loss == "per_domain"  # the paper's eq. 7
    assert RunConfig().with_overrides({"task_loss": "global"}).train.task_loss == "global"
    with pytest.raises(ValueError, match=r"unknown task_loss 'mean'; valid: \['global', 'per_domain'\]"):
        RunConfig().with_overrides({"task_loss": "mean"})
