import pytest
import torch
from torch import nn

from model.architectures import ModelConfig, build_model
from model.init import seed_parameters

VOCAB = (7, 11, 3, 5)
PRIOR = (0, 1, 2)
SMALL = dict(expert_hidden=(8, 6), tower_hidden=(4,), embedding_dim=4, num_embeddings=3)


def build(seed, **overrides):
    return build_model(ModelConfig(**{**SMALL, **overrides}), vocab_sizes=VOCAB, num_domains=3,
                       prior_fields=PRIOR, seed=seed)


def test_shared_modules_start_identical_across_variants_and_global_rng_does_not_matter():
    torch.manual_seed(123)
    mmoe = build(0, embedding="SE", gating="standard", aux_loss="none")
    torch.manual_seed(456)
    pg = build(0, embedding="ME", gating="pg")  # a prior table is built in between
    mmoe_params, pg_params = dict(mmoe.named_parameters()), dict(pg.named_parameters())
    for name in ("experts.linears.0.weight", "experts.linears.1.bias", "towers.linears.0.weight",
                 "towers.out.weight"):
        assert torch.equal(mmoe_params[name], pg_params[name]), name


def test_seeds_differ_and_repeat():
    a, b, again = build(0), build(1), build(0)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), again.parameters()):
        assert torch.equal(pa, pc), name
        if pa.numel() > 4 and "norm" not in name:
            assert not torch.equal(pa, pb), name


def test_a_module_without_reset_parameters_is_refused():
    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2))

    with pytest.raises(TypeError, match="module 'inner' \\(Bare\\) owns parameters but has no reset_parameters"):
        seed_parameters(nn.ModuleDict({"inner": Bare()}), 0)
