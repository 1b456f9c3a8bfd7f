import torch

from nets_toys import toy_batch, toy_model


def test_every_layer_of_the_model_is_star_topology():
    model = toy_model("star")
    layer = model.layers[0]
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn_like(p))
    x, domains = torch.randn(6, layer.weight.shape[0]), torch.tensor([0, 1, 2, 2, 1, 0])
    expected = torch.stack([x[i] @ (layer.shared_weight[:, 0] * layer.weight[:, s]) + layer.shared_bias[0]
                            + layer.bias[s] for i, s in enumerate(domains.tolist())])
    assert torch.allclose(layer(x, domains), expected, atol=1e-5)
    assert all(norm.shared_weight is not None for norm in model.norms)  # partitioned normalisation


def test_the_logit_is_the_star_network_plus_the_auxiliary_network():
    model = toy_model("star")
    model.eval()
    features, domains, _ = toy_batch(8)
    logits = model(features, domains).logits
    with torch.no_grad():
        model.auxiliary.out.bias += 1.25
    assert torch.allclose(model(features, domains).logits, logits + 1.25, atol=1e-5)
