import pytest

from model.architectures import ARCHITECTURES, OPTIONAL_KEYS, ModelConfig, architecture_defaults
from model.config import RunConfig
from model.train import SMOKE_OVERRIDES, main, train

# Every architecture, and ME wherever it allows it.
VARIANTS = [(name, embedding) for name, arch in ARCHITECTURES.items() for embedding in arch.embeddings]


def test_the_field_defaults_are_crocodiles():
    assert architecture_defaults("crocodile") == {"embedding": ModelConfig.embedding, "gating": ModelConfig.gating,
                                                  "aux_loss": ModelConfig.aux_loss}
    assert ModelConfig.defaults("crocodile") == ModelConfig()


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_naming_an_architecture_gives_its_defaults(name):
    model = RunConfig().with_overrides({"architecture": name}).model
    assert model == ModelConfig.defaults(name)
    assert (model.aux_loss != "none") == (name == "crocodile")
    assert model.embedding == ARCHITECTURES[name].embeddings[0]


def test_keys_set_before_an_architecture_change_stay_and_must_agree():
    base = RunConfig().with_overrides({"norm": "layer", "dropout": 0.1})
    star = base.with_overrides({"architecture": "star"}).model
    assert (star.norm, star.dropout, star.aux_loss, star.gating) == ("layer", 0.1, "none", "none")
    pg = RunConfig().with_overrides({"gating": "pg"})
    with pytest.raises(ValueError, match="architecture='star' has its own gates and does not read gating"):
        pg.with_overrides({"architecture": "star"})
    # Back and forth in one call: the final state is what is checked.
    assert RunConfig().with_overrides({"num_embeddings": 3}).with_overrides(
        {"architecture": "ple", "num_embeddings": 5}).model.architecture == "ple"


@pytest.mark.parametrize("keys,message", [
    ({"architecture": "star", "aux_loss": "cov"}, "architecture='star' has no experts, so no auxiliary loss applies"),
    ({"architecture": "pepnet", "aux_loss": "importance"}, "set aux_loss=none"),
    ({"architecture": "mmoe", "gating": "pg"}, "Crocodile module with standard gating.*architecture=crocodile"),
    ({"architecture": "crocodile", "gating": "none"}, "takes|gating"),
    ({"architecture": "stem", "embedding": "SE"}, "architecture='stem' takes embedding in \\['ME'\\]"),
    ({"architecture": "adasparse", "embedding": "ME"}, "ME is defined for \\['crocodile', 'mmoe', 'ple', 'stem'\\]"),
    ({"architecture": "ple", "num_embeddings": 3}, "architecture='ple' does not read num_embeddings"),
    ({"architecture": "mmoe", "ple_levels": 3}, "does not read ple_levels"),
    ({"architecture": "star", "sparsity_weight": 0.5}, "does not read sparsity_weight"),
    ({"architecture": "ple", "ple_levels": 3}, "ple_levels must be <= the 2 widths"),
    ({"architecture": "hinet", "shared_experts": 0}, "shared_experts must be in \\[1, 16\\]"),
    ({"architecture": "adasparse", "sparsity_target": 1.0}, "sparsity_target must be in \\[0, 1\\)"),
    ({"architecture": "resnet"}, "unknown architecture 'resnet'; valid: \\["),
])
def test_contradictions_fail_naming_the_key(keys, message):
    with pytest.raises(ValueError, match=message):
        RunConfig().with_overrides(keys)


@pytest.mark.parametrize("name,embedding", VARIANTS)
def test_a_training_step_is_deterministic(name, embedding):
    import torch

    from model.architectures import build_model
    from model.losses import task_loss

    keys = {"architecture": name, "embedding": embedding, "expert_hidden": (8, 6), "tower_hidden": (4,),
            "embedding_dim": 4, "dropout": 0.1}
    if "num_embeddings" in ARCHITECTURES[name].reads:
        keys["num_embeddings"] = 3  # a set per domain for ME-MMoE
    config = RunConfig().with_overrides(keys).model
    grads = []
    for _ in range(2):
        torch.manual_seed(0)  # dropout
        model = build_model(config, vocab_sizes=(7, 11, 3, 5), num_domains=3, prior_fields=(0, 1, 2), seed=3)
        g = torch.Generator().manual_seed(1)
        features = torch.stack([torch.randint(v, (64,), generator=g) for v in (7, 11, 3, 5)], dim=1)
        domains, labels = torch.randint(3, (64,), generator=g), torch.randint(2, (64,), generator=g).float()
        out = model(features, domains)
        task_loss(out.logits, labels, domains, 3).backward()
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_every_optional_key_is_read_by_some_architecture():
    read = set().union(*(arch.reads for arch in ARCHITECTURES.values()))
    assert read == set(OPTIONAL_KEYS)


@pytest.mark.parametrize("name,embedding", VARIANTS)
def test_every_method_trains_on_tiny_and_beats_chance(tiny, name, embedding):
    keys = {**SMALL_RUN, "architecture": name, "embedding": embedding}
    if name == "mmoe" and embedding == "ME":
        keys["num_embeddings"] = 5  # a set per domain
    result = train(RunConfig().with_overrides(keys), tiny)
    domain = "overall" if ARCHITECTURES[name].overall else "S1"
    assert result.metrics[f"test_auc_{domain}"] > 0.5, result.metrics
    assert result.epochs_run == 1


# One epoch of 63 small batches: every method is clearly above chance (0.58-0.68 measured).
SMALL_RUN = {**SMOKE_OVERRIDES, "expert_hidden": (16, 8), "lr": 3e-3, "batch_size": 256}


def test_cli_smoke_test_of_a_method_with_me(capsys):
    assert main(["--smoke-test", "architecture=stem", "embedding=ME"]) == 0
    assert "test metrics" in capsys.readouterr().out


def test_single_domain_prints_no_overall_metric(capsys):
    assert main(["--smoke-test", "architecture=single_domain", "epochs=1"]) == 0
    overall = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("overall"))
    assert overall.split()[1:] == ["-", "-", "-"]
