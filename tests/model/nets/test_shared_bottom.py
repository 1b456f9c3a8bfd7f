import torch

from nets_toys import toy_batch, toy_model


def test_domains_share_the_bottom_and_differ_only_by_their_towers():
    model = toy_model("shared_bottom", norm="none")
    features, _, _ = toy_batch(8)
    zeros, ones = torch.zeros(8, dtype=torch.int64), torch.ones(8, dtype=torch.int64)
    assert not torch.allclose(model(features, zeros).logits, model(features, ones).logits)
    with torch.no_grad():  # give domain 1 domain 0's tower: y_s = tower_s(bottom(x)) becomes the same
        for linear in (*model.towers.linears, model.towers.out):
            linear.weight[:, 1] = linear.weight[:, 0]
            linear.bias[1] = linear.bias[0]
    assert torch.allclose(model(features, zeros).logits, model(features, ones).logits)
    assert model.embedding.weight.shape[1] == 4  # one shared embedding set
