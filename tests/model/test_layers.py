import pytest
import torch
from torch import nn

from model.layers import (GROUPED_MIN_OUT, BatchedGate, BatchedMLP, DomainNorm, ModelNorm, MultiEmbedding,
                          PerDomainLinear, PerDomainMLP, StarLinear, every_domain_linear, grouped_inputs, grouped_linear,
                          own_domain, per_domain_linear)


def test_batch_norm_matches_torch_per_model_and_uses_running_statistics_in_eval():
    torch.manual_seed(0)
    x = torch.randn(3, 50, 4) * 2 + 1  # (M, B, H)
    ours = ModelNorm("batch", num_models=3, width=4, momentum=0.1)
    reference = [nn.BatchNorm1d(4, momentum=None) for _ in range(3)]  # cumulative average
    batches = [x, x * 0.5 - 2]
    for batch in batches:  # while fewer than 1/momentum batches were seen: an equal-weight average
        y = ours(batch)
        for m in range(3):
            assert torch.allclose(y[m], reference[m](batch[m]), atol=1e-5)
    ours.eval()
    for bn in reference:
        bn.eval()
    y = ours(x[:, :7])
    for m in range(3):
        assert torch.allclose(y[m], reference[m](x[m, :7]), atol=1e-5)


def test_running_statistics_decay_with_momentum_after_the_first_batches():
    norm = ModelNorm("batch", num_models=1, width=1, momentum=0.5)
    for value in (0.0, 0.0, 4.0):  # batches of constant columns: means 0, 0 (average), then 4 at 0.5
        norm(torch.full((1, 3, 1), value))
    assert norm.stats.running_mean.item() == 2.0


def test_domain_batch_norm_uses_only_each_domains_rows():
    torch.manual_seed(0)
    x = torch.randn(10, 3) * 3 + 1
    domains = torch.tensor([0, 0, 0, 0, 2, 2, 2, 2, 2, 2])  # domain 1 is absent
    norm = DomainNorm("batch", num_domains=3, width=3)
    y = norm(x, domains)
    for d in (0, 2):
        assert torch.allclose(y[domains == d], nn.BatchNorm1d(3)(x[domains == d]), atol=1e-4)
    assert torch.equal(norm.stats.running_mean[1], torch.zeros(1, 3))  # untouched: no rows
    assert torch.equal(norm.stats.running_var[1], torch.ones(1, 3))
    reference = nn.BatchNorm1d(3, momentum=None)
    reference(x[domains == 2])
    assert torch.allclose(norm.stats.running_var[2, 0], reference.running_var, atol=1e-4)
    norm.eval()
    reference.eval()
    assert torch.allclose(norm(x[4:], domains[4:]), reference(x[4:]), atol=1e-4)


def test_layer_norms():
    x = torch.randn(2, 5, 6)
    assert torch.allclose(ModelNorm("layer", num_models=2, width=6)(x), nn.functional.layer_norm(x, (6,)), atol=1e-6)
    rows = torch.randn(5, 6)
    assert torch.allclose(DomainNorm("layer", num_domains=2, width=6)(rows, torch.tensor([0, 1, 1, 0, 1])),
                          nn.functional.layer_norm(rows, (6,)), atol=1e-6)


@pytest.mark.parametrize("out_dim", [2, GROUPED_MIN_OUT])  # the static path, then CPU's grouped path
def test_per_domain_linear_is_each_domains_own_linear(out_dim):
    torch.manual_seed(0)
    layer = PerDomainLinear(num_domains=3, in_dim=4, out_dim=out_dim)
    x = torch.randn(6, 4)
    domains = torch.tensor([2, 0, 1, 1, 0, 2])
    expected = torch.stack([x[b] @ layer.weight[:, d] + layer.bias[d] for b, d in enumerate(domains.tolist())])
    assert torch.allclose(layer(x, domains), expected, atol=1e-6)


def test_grouped_rows_equal_every_domains_block_in_value_and_gradient():
    # CPU's grouped path and the static path (GPU, compile, vmap) train the same model: values and
    # gradients agree to rounding, with a domain absent from the batch and rows in any order.
    torch.manual_seed(0)
    x = torch.randn(200, 7, dtype=torch.float64)
    weight = torch.randn(7, 4, 24, dtype=torch.float64)
    bias = torch.randn(4, 24, dtype=torch.float64)
    domains = torch.randint(0, 3, (200,))  # domain 3 has no rows
    results = []
    for fn in (grouped_linear, every_domain_linear):
        leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
        out = fn(*leaves, domains)
        (out * torch.linspace(-1, 1, out.numel(), dtype=torch.float64).view_as(out)).sum().backward()
        results.append([out, *(t.grad for t in leaves)])
    for grouped, static in zip(*results):
        assert torch.allclose(grouped, static, atol=1e-12)
    assert torch.equal(results[0][2][:, 3], torch.zeros(7, 24, dtype=torch.float64))  # no rows, no gradient


def test_per_domain_linear_keeps_static_shapes_under_vmap():
    # Stacked seeds (model/seed_batch.py) run under vmap, where the grouped path's host read cannot
    # run: the layer takes the static path there, seed by seed equal to the unstacked layer.
    torch.manual_seed(0)
    weight, bias = torch.randn(2, 5, 3, GROUPED_MIN_OUT), torch.randn(2, 3, GROUPED_MIN_OUT)  # 2 seeds
    x, domains = torch.randn(2, 9, 5), torch.randint(0, 3, (9,))
    stacked = torch.func.vmap(per_domain_linear, in_dims=(0, 0, 0, None))(x, weight, bias, domains)
    for k in range(2):
        assert torch.allclose(stacked[k], per_domain_linear(x[k], weight[k], bias[k], domains), atol=1e-6)


def test_batched_mlp_equals_separate_mlps_and_dropout_is_off_in_eval():
    torch.manual_seed(0)
    mlp = BatchedMLP(num_models=2, in_dim=5, hidden=(4, 3), out_dim=1, norm="none", dropout=0.5)
    x = torch.randn(2, 8, 5)
    mlp.eval()
    y = mlp(x)
    for m in range(2):
        h = x[m]
        for linear in mlp.linears:
            h = torch.relu(h @ linear.weight[m] + linear.bias[m])
        assert torch.allclose(y[m], h @ mlp.out.weight[m] + mlp.out.bias[m], atol=1e-6)
    mlp.train()
    assert not torch.allclose(mlp(x), y)


def test_own_domain_picks_each_rows_domain():
    per_domain = torch.arange(3 * 4 * 2, dtype=torch.float32).view(3, 4, 2)  # (S, B, O)
    domains = torch.tensor([2, 0, 1, 2])
    picked = own_domain(per_domain, domains)
    assert torch.equal(picked, torch.stack([per_domain[d, b] for b, d in enumerate(domains.tolist())]))


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_per_domain_mlp_row_depends_only_on_its_domain_and_own_rows(norm):
    torch.manual_seed(0)
    layer = PerDomainMLP(num_domains=3, in_dim=4, hidden=(5,), out_dim=2, norm=norm)
    x = torch.randn(12, 4)
    domains = torch.tensor([0, 1, 2] * 4)
    y = layer(x, domains)
    # Changing the rows of domain 0 changes nothing in domains 1 and 2, even in training mode.
    x2 = x.clone()
    x2[domains == 0] = torch.randn(4, 4)
    y2 = layer(x2, domains)
    assert torch.allclose(y[domains != 0], y2[domains != 0], atol=1e-6)
    assert not torch.allclose(y[domains == 0], y2[domains == 0])


def test_multi_embedding_field_rows_are_the_looked_up_vectors():
    table = MultiEmbedding(vocab_sizes=(3, 4), num_sets=2, dim=2)
    features = torch.tensor([[2, 3]])
    out = table(features)  # (M, B, F*d)
    assert torch.equal(out[1, 0, 2:], table.field_rows(1, 1)[3])
    assert torch.equal(out[0, 0, :2], table.field_rows(0, 0)[2])
    assert table.field_rows(1, 0).shape == (4, 2)


def test_domain_weight_is_shared_times_specific_and_bias_shared_plus_specific():
    layer = StarLinear(num_domains=2, in_dim=2, out_dim=1)
    with torch.no_grad():
        layer.shared_weight.copy_(torch.tensor([[[2.0]], [[-1.0]]]))  # (in, 1, out)
        layer.shared_bias.fill_(0.5)
        layer.weight.copy_(torch.tensor([[[3.0], [5.0]], [[4.0], [0.0]]]))  # (in, S, out)
        layer.bias.copy_(torch.tensor([[1.0], [-2.0]]))
    x = torch.tensor([[1.0, 1.0], [1.0, 1.0], [2.0, -1.0]])
    y = layer(x, torch.tensor([0, 1, 0]))
    # domain 0: W = (2*3, -1*4) = (6, -4), b = 1.5; domain 1: W = (10, 0), b = -1.5
    assert torch.allclose(y.squeeze(-1), torch.tensor([6 - 4 + 1.5, 10 + 0 - 1.5, 12 + 4 + 1.5]))


def test_a_fresh_star_layer_gives_every_domain_the_shared_layer():
    layer = StarLinear(num_domains=3, in_dim=4, out_dim=2)
    x = torch.randn(6, 4)
    shared = x @ layer.shared_weight[:, 0] + layer.shared_bias[0]
    assert torch.allclose(layer(x, torch.tensor([0, 1, 2, 0, 1, 2])), shared, atol=1e-6)


def test_partitioned_norm_scales_by_shared_times_domain_and_shifts_by_their_sum():
    norm = DomainNorm("layer", num_domains=2, width=2, shared_affine=True)
    with torch.no_grad():
        norm.shared_weight.copy_(torch.tensor([2.0, 3.0]))
        norm.shared_bias.copy_(torch.tensor([0.5, 0.0]))
        norm.weight.copy_(torch.tensor([[1.0, 1.0], [4.0, -1.0]]))
        norm.bias.copy_(torch.tensor([[0.0, 0.0], [1.0, 2.0]]))
    x = torch.tensor([[1.0, 3.0], [1.0, 3.0]])  # layer-normalised: (-1, 1)
    y = norm(x, torch.tensor([0, 1]))
    assert torch.allclose(y, torch.tensor([[-2 + 0.5, 3.0], [-8 + 1.5, -3 + 2.0]]), atol=1e-3)


def test_batched_gates_are_independent_softmaxes():
    gate = BatchedGate(num_gates=2, in_dim=3, num_experts=4, norm="batch")
    x = torch.randn(2, 10, 3)
    weights = gate(x)
    assert weights.shape == (2, 10, 4) and torch.allclose(weights.sum(-1), torch.ones(2, 10))
    changed = x.clone()
    changed[1] += 5.0
    assert torch.allclose(gate(changed)[0], weights[0], atol=1e-6)  # gate 0 reads only its input


def test_grouped_inputs_give_each_group_its_domains_input_and_sum_the_gradient_back():
    per_domain = torch.randn(3, 4, 2, requires_grad=True)  # (S, B, in)
    shared = torch.randn(1, 4, 2, requires_grad=True)
    out = grouped_inputs(per_domain, shared, 2, 3)  # 3 domains x 2 experts, then 3 shared
    assert out.shape == (9, 4, 2)
    for e, source in enumerate([0, 0, 1, 1, 2, 2]):
        assert torch.equal(out[e], per_domain[source])
    assert all(torch.equal(out[6 + j], shared[0]) for j in range(3))
    out.sum().backward()
    assert torch.equal(per_domain.grad, torch.full_like(per_domain, 2.0))
    assert torch.equal(shared.grad, torch.full_like(shared, 3.0))
