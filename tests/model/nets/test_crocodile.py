import itertools

import pytest
import torch

from model.config import RunConfig
from model.architectures import ModelConfig, build_model
from model.nets.crocodile import EMBEDDINGS, GATINGS
from model.losses import AUX_LOSSES, aux_loss, task_loss

VOCAB = (7, 11, 3, 5)  # user_id, item_id, domain_id, one attribute
PRIOR = (0, 1, 2)
SMALL = dict(expert_hidden=(8, 6), tower_hidden=(4,), embedding_dim=4)  # noqa: C408


def batch(num_rows=32, num_domains=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    features = torch.stack([torch.randint(v, (num_rows,), generator=g) for v in VOCAB], dim=1)
    domains = torch.randint(num_domains, (num_rows,), generator=g)
    labels = torch.randint(2, (num_rows,), generator=g).float()
    return features, domains, labels


@pytest.mark.parametrize("embedding,gating,loss,norm", [
    (*combo, norm) for combo in itertools.product(EMBEDDINGS, sorted(GATINGS), sorted(AUX_LOSSES))
    for norm in (("none", "batch", "layer") if combo[2] == "cov" else ("batch",))])
def test_every_variant_builds_and_takes_a_training_step(embedding, gating, loss, norm):
    config = ModelConfig(embedding=embedding, gating=gating, aux_loss=loss, num_embeddings=3, alpha=0.1, norm=norm,
                         dropout=0.1, **SMALL)
    model = build_model(config, vocab_sizes=VOCAB, num_domains=3, prior_fields=PRIOR)
    features, domains, labels = batch()
    out = model(features, domains)
    assert out.logits.shape == (32,)
    assert out.expert_outputs.shape == (3, 32, 6)
    assert out.gates.shape == (32, 3)
    assert torch.allclose(out.gates.sum(1), torch.ones(32))
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    total = task_loss(out.logits, labels, domains, 3) + config.alpha * aux_loss(loss, out.expert_outputs, out.gates, 0)
    total.backward()
    optimizer.step()
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert changed >= len(before) // 2


@pytest.mark.parametrize("num_embeddings", range(1, 11))
def test_num_embeddings_from_1_to_10(num_embeddings):
    config = ModelConfig(embedding="ME", gating="peg", num_embeddings=num_embeddings, **SMALL)
    model = build_model(config, vocab_sizes=VOCAB, num_domains=3, prior_fields=PRIOR)
    features, domains, _ = batch()
    out = model(features, domains)
    assert out.expert_outputs.shape == (num_embeddings, 32, 6)
    # ME: one table holding M sets of d columns.
    assert model.embedding.weight.shape == (sum(VOCAB), num_embeddings * 4)


def test_se_shares_one_table_and_pg_has_a_separate_prior_table():
    se = build_model(ModelConfig(embedding="SE", gating="pg", num_embeddings=4, **SMALL), vocab_sizes=VOCAB,
                     num_domains=3, prior_fields=PRIOR)
    assert se.embedding.weight.shape == (sum(VOCAB), 4)
    assert se.prior_embedding.weight.shape == (7 + 11 + 3, 4)
    standard = build_model(ModelConfig(embedding="SE", gating="standard", **SMALL), vocab_sizes=VOCAB,
                           num_domains=3, prior_fields=())
    assert standard.prior_embedding is None


def test_each_row_uses_only_its_own_domain_tower():
    config = ModelConfig(num_embeddings=2, **SMALL)
    model = build_model(config, vocab_sizes=VOCAB, num_domains=3, prior_fields=PRIOR)
    features, domains, _ = batch(num_rows=16)
    logits = model(features, domains).logits
    model.eval()  # batch statistics would couple the rows; running statistics do not
    logits = model(features, domains).logits
    with torch.no_grad():
        model.towers.out.bias[2] += 5.0  # changes domain 2's predictions only
    shifted = model(features, domains).logits
    changed = ~torch.isclose(logits, shifted)
    assert torch.equal(changed, domains == 2)
    # A row's logit does not depend on which other rows share its batch.
    assert torch.allclose(model(features[:5], domains[:5]).logits, shifted[:5], atol=1e-6)


def test_elementwise_gates_have_one_softmax_per_dimension():
    config = ModelConfig(gating="eg", num_embeddings=3, **SMALL)
    model = build_model(config, vocab_sizes=VOCAB, num_domains=3, prior_fields=PRIOR)
    assert model.gates.out.weight.shape[-1] == 3 * 6
    plain = build_model(ModelConfig(gating="pg", num_embeddings=3, **SMALL), vocab_sizes=VOCAB, num_domains=3,
                        prior_fields=PRIOR)
    assert plain.gates.out.weight.shape[-1] == 3


def test_me_standard_gate_of_domain_s_reads_embedding_set_s():
    config = ModelConfig(embedding="ME", gating="standard", num_embeddings=3, norm="none", **SMALL)
    model = build_model(config, vocab_sizes=VOCAB, num_domains=3, prior_fields=())
    model.eval()
    features, domains, _ = batch(num_rows=64)
    base = model(features, domains).gates
    with torch.no_grad():  # perturb embedding set 1: only the gates of domain-1 rows read it
        model.embedding.weight[:, 4:8] += 1.0
    gates = model(features, domains).gates
    changed = ~torch.isclose(base, gates).all(dim=1)
    assert torch.equal(changed, domains == 1)


def test_me_standard_gating_needs_a_set_per_domain():
    config = ModelConfig(embedding="ME", gating="standard", num_embeddings=2, **SMALL)
    with pytest.raises(ValueError, match="num_embeddings must be >= the 3 domains.*gating=pg or gating=peg"):
        build_model(config, vocab_sizes=VOCAB, num_domains=3, prior_fields=())


@pytest.mark.parametrize("override,message", [
    ({"gating": "moe"}, "unknown gating 'moe'; valid: \\['eg', 'peg', 'pg', 'standard'\\]"),
    ({"aux_loss": "l2"}, "unknown aux_loss 'l2'"),
    ({"embedding": "XE"}, "embedding must be one of"),
    ({"num_embeddings": 0}, "num_embeddings must be in \\[1, 16\\]"),
    ({"num_embeddings": 17}, "num_embeddings must be in"),
    ({"alpha": -1.0}, "alpha must be a finite number >= 0"),
    ({"alpha": float("nan")}, "alpha must be a finite number >= 0"),
    ({"alpha": float("inf")}, "alpha must be a finite number >= 0"),
    ({"expert_hidden": ()}, "expert_hidden"),
    ({"aux_rows": -1}, "aux_rows"),
    ({"norm": "group"}, "unknown norm 'group'; valid: \\['none', 'batch', 'layer'\\]"),
    ({"dropout": 1.0}, "dropout must be in \\[0, 1\\)"),
    ({"architecture": "dcn"}, "unknown architecture 'dcn'; valid: \\["),
    ({"embedding_init_std": 0.0}, "embedding_init_std must be > 0"),
])
def test_bad_model_config(override, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**override)
