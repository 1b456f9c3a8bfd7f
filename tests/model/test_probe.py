"""A run's diagnostics (model/probe.py) on every architecture: the contract's columns, the embedding
sets each domain reads, determinism."""
import math

import pytest
import torch

from model.architectures import ARCHITECTURES
from model.config import RunConfig
from model.diagnostics import FREQUENCY_GROUPS, information_abundance
from model.probe import LAYOUTS, MAX_DIAGNOSED_SETS, Probe, diagnostic_columns, domain_sets
from model.train import SMOKE_OVERRIDES, model_for

ROWS = 128
VARIANTS = [(name, emb) for name, arch in ARCHITECTURES.items() for emb in arch.embeddings]


def config_of(architecture: str, embedding: str, **changes) -> RunConfig:
    return RunConfig().with_overrides({**SMOKE_OVERRIDES, "architecture": architecture, "embedding": embedding,
                                       **changes})


def same(a: dict, b: dict) -> bool:
    """Equal keys and exactly equal values, NaN equal to NaN."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_columns_are_fixed_by_the_domains():
    cols = diagnostic_columns(("S1", "S6", "S9"))
    assert len(cols) == len(set(cols))
    for name in ("ia_user_id", "ia_item_id", "ia_item_id_set0", "ia_user_id_set15", "ia_item_id_S6",
                 "ia_item_id_freq1", "ia_item_id_freq5", "ia_expert2_S6", "ia_expert15_S9", "ia_expert_S1",
                 "di_S1_S6", "di_S1_S9", "di_S6_S9", "di_mean"):
        assert name in cols, name
    assert "di_S6_S1" not in cols and "ia_item_id_set16" not in cols
    n, s = MAX_DIAGNOSED_SETS, 3
    assert len(cols) == 2 * (1 + n + s) + FREQUENCY_GROUPS + s * (n + 1) + s * (s - 1) // 2 + 1


def test_every_architecture_and_embedding_has_a_layout():
    assert set(VARIANTS) == set(LAYOUTS)


@pytest.mark.parametrize("architecture,embedding", VARIANTS)
def test_measure_returns_exactly_the_contract_columns_on_every_architecture(tiny, architecture, embedding):
    config = config_of(architecture, embedding)
    model = model_for(config, tiny)
    model.train()
    probe = Probe.for_run(tiny, config=config.model, rows_per_domain=ROWS)
    scalars, spectra = probe.measure(model)
    assert model.training  # restored
    assert tuple(scalars) == diagnostic_columns(tiny.domain_names)
    num_sets = model.embedding.num_sets
    for field in ("user_id", "item_id"):
        assert 1 <= scalars[f"ia_{field}"] <= config.model.embedding_dim
        for p in range(MAX_DIAGNOSED_SETS):
            assert math.isfinite(scalars[f"ia_{field}_set{p}"]) == (p < num_sets), (field, p)
        for dom in tiny.domain_names:
            assert math.isfinite(scalars[f"ia_{field}_{dom}"]), (field, dom)
            assert f"{field}_{dom}" in spectra
    assert all(math.isfinite(scalars[f"ia_item_id_freq{g}"]) for g in range(1, FREQUENCY_GROUPS + 1))
    expert_columns = [k for k in scalars if k.startswith("ia_expert")]
    di_columns = [k for k in scalars if k.startswith("di_")]
    if ARCHITECTURES[architecture].has_experts:
        experts = model(probe.features[0], probe.domains[0]).expert_outputs.shape[0]
        for dom in tiny.domain_names:
            assert math.isfinite(scalars[f"ia_expert_{dom}"])
            for p in range(MAX_DIAGNOSED_SETS):
                assert math.isfinite(scalars[f"ia_expert{p}_{dom}"]) == (p < experts), (dom, p)
        assert all(math.isnan(scalars[k]) or 0 <= scalars[k] <= 1 for k in di_columns)
        assert math.isfinite(scalars["di_mean"])
        assert f"expert{experts - 1}_{tiny.domain_names[-1]}" in spectra
    else:  # no experts: expert IA and DI do not apply
        assert all(math.isnan(scalars[k]) for k in expert_columns + di_columns)
        assert not any(name.startswith("expert") for name in spectra)
    for name, values in spectra.items():
        assert 1 <= len(values) <= 64 and values[0] == pytest.approx(0), name
        assert values == sorted(values, reverse=True), name


def test_same_model_same_scalars_and_measuring_changes_nothing(tiny):
    config = config_of("crocodile", "ME", num_embeddings=3)
    model = model_for(config, tiny)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    probe = Probe.for_run(tiny, config=config.model, rows_per_domain=ROWS)
    first, first_spectra = probe.measure(model)
    second, second_spectra = Probe.for_run(tiny, config=config.model, rows_per_domain=ROWS).measure(model)
    assert same(first, second) and first_spectra == second_spectra
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm stats untouched
    other = Probe.for_run(tiny, config=config.model, rows_per_domain=ROWS, seed=1).measure(model)[0]
    assert other["ia_expert0_S0"] != first["ia_expert0_S0"]  # another validation sample
    assert other["ia_item_id"] == first["ia_item_id"]  # embedding columns do not depend on the sample


def _make_rank_one(model, data, set_index: int) -> None:
    """Set embedding set `set_index` of every item_id row to a rank-1 matrix."""
    emb, col = model.embedding, data.field_names.index("item_id")
    start, rows = int(emb.offsets[col]), data.vocab_sizes[col]
    gen = torch.Generator().manual_seed(0)
    u, v = torch.rand(rows, 1, generator=gen) + 0.5, torch.randn(1, emb.dim, generator=gen)
    with torch.no_grad():
        emb.weight[start:start + rows, set_index * emb.dim:(set_index + 1) * emb.dim] = u @ v


@pytest.mark.parametrize("architecture,embedding,target", [
    ("stem", "ME", 2), ("ple", "ME", 2), ("single_domain", "SE", 4)])
def test_domain_specific_layouts_read_the_domains_own_set(tiny, architecture, embedding, target):
    config = config_of(architecture, embedding)
    model = model_for(config, tiny)
    _make_rank_one(model, tiny, target)
    scalars, spectra = Probe.for_run(tiny, config=config.model, rows_per_domain=ROWS).measure(model)
    dom = tiny.domain_names[target]
    assert scalars[f"ia_item_id_set{target}"] == pytest.approx(1, abs=1e-6)
    assert scalars[f"ia_item_id_{dom}"] == pytest.approx(1, abs=1e-6)  # its own set alone
    assert spectra[f"item_id_{dom}"][1] < -10  # one singular value, the rest ~0 (float32 rounding)
    for other in tiny.domain_names:
        if other != dom:
            assert scalars[f"ia_item_id_{other}"] > 3, other
    if architecture != "single_domain":  # the shared set S is no domain's own
        assert model.embedding.num_sets == tiny.num_domains + 1


def test_shared_layouts_average_every_set(tiny):
    config = config_of("crocodile", "ME", num_embeddings=3)
    model = model_for(config, tiny)
    _make_rank_one(model, tiny, 1)
    probe = Probe.for_run(tiny, config=config.model, rows_per_domain=ROWS)
    scalars, _ = probe.measure(model)
    emb, col = model.embedding, tiny.field_names.index("item_id")
    ids = probe.seen_by_domain["item_id"][4]
    by_hand = [information_abundance(emb.weight.detach()[emb.offsets[col] + ids, p * emb.dim:(p + 1) * emb.dim])
               for p in range(3)]
    assert scalars["ia_item_id_S6"] == pytest.approx(sum(by_hand) / 3)
    assert by_hand[1] == pytest.approx(1, abs=1e-6) and scalars["ia_item_id_S6"] > 2
    assert scalars["ia_item_id"] == pytest.approx(
        sum(scalars[f"ia_item_id_set{p}"] for p in range(3)) / 3)


def test_more_experts_than_columns_average_them_all(tiny):
    config = config_of("stem", "ME", specific_experts=4)  # 5 domains * 4 + 1 = 21 experts
    scalars, spectra = Probe.for_run(tiny, config=config.model, rows_per_domain=ROWS).measure(model_for(config, tiny))
    assert tuple(scalars) == diagnostic_columns(tiny.domain_names)
    assert math.isfinite(scalars["ia_expert15_S0"]) and "expert16_S0" not in spectra
    assert scalars["ia_expert_S0"] != pytest.approx(sum(scalars[f"ia_expert{p}_S0"] for p in range(16)) / 16)


def test_bad_arguments_fail_naming_them(tiny):
    config = config_of("crocodile", "ME")
    with pytest.raises(ValueError, match="rows_per_domain must be >= 1, but got rows_per_domain=0"):
        Probe.for_run(tiny, config=config.model, rows_per_domain=0)
    with pytest.raises(ValueError, match="needs a set per domain"):
        domain_sets(config_of("stem", "ME").model, 2, 5)
