"""Diagnostics (model/diagnostics.py) on matrices and sets that can be checked by hand."""
import math

import pytest
import torch

from model.architectures import ModelConfig, build_model
from model.diagnostics import (conflict_users, conflict_users_by_pair, crocodile_embedding_tables,
                               crocodile_expert_outputs, diversity_index, exposure_counts, expert_ia,
                               gather_diagnostics, ia_by_frequency, information_abundance, log_spectrum,
                               median_norm, sample_rows)


def test_information_abundance_by_hand():
    assert information_abundance(torch.eye(7)) == pytest.approx(7)  # identity -> d
    u = torch.randn(50, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    v = torch.randn(1, 9, dtype=torch.float64)
    assert information_abundance(u @ v) == pytest.approx(1, abs=1e-9)  # rank 1 -> 1
    assert information_abundance(torch.diag(torch.tensor([3.0, 2.0, 1.0]))) == pytest.approx(2)  # 6 / 3
    assert information_abundance(torch.tensor([[3.0, 0], [0, 1], [0, 0]])) == pytest.approx(4 / 3)
    assert math.isnan(information_abundance(torch.zeros(4, 3)))
    with pytest.raises(ValueError, match="expected a 2-D matrix"):
        information_abundance(torch.ones(2, 2, 2))


def test_information_abundance_invariances():
    gen = torch.Generator().manual_seed(1)
    E = torch.randn(200, 16, generator=gen) * torch.linspace(0.1, 3, 16)
    ia = information_abundance(E)
    assert 1 < ia < 16
    assert information_abundance(E[torch.randperm(200, generator=gen)]) == pytest.approx(ia, rel=1e-9)  # row order
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=gen, dtype=torch.float64))
    assert information_abundance(E.double() @ q) == pytest.approx(ia, rel=1e-6)  # rotation of the columns
    r, _ = torch.linalg.qr(torch.randn(200, 200, generator=gen, dtype=torch.float64))
    assert information_abundance(r @ E.double()) == pytest.approx(ia, rel=1e-6)  # and of the rows
    assert information_abundance(5 * E) == pytest.approx(ia, rel=1e-6)  # scale


def test_log_spectrum_is_normalised_sorted_and_short():
    spec = log_spectrum(torch.diag(torch.tensor([1.0, 4.0, 2.0])))
    assert spec == pytest.approx([0.0, math.log(0.5), math.log(0.25)])
    long = log_spectrum(torch.randn(300, 100, generator=torch.Generator().manual_seed(0)))
    assert len(long) == 64 and long[0] == 0 and long == sorted(long, reverse=True)
    assert min(log_spectrum(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))) == pytest.approx(math.log(1e-12))


def test_ia_by_frequency_groups_high_to_low():
    # Rows 0-9 (most exposed) span 4 directions equally, rows 10-19 only one.
    E = torch.cat([torch.eye(4).repeat(3, 1)[:10], torch.tensor([[1.0, 0, 0, 0]]).repeat(10, 1)])
    counts = torch.cat([torch.full((10,), 100), torch.full((10,), 2)])
    perm = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    high, low = ia_by_frequency(E[perm], counts[perm], groups=2)
    assert low == pytest.approx(1.0)
    assert high == pytest.approx(information_abundance(E[:10]))
    with pytest.raises(ValueError, match="one entry per row"):
        ia_by_frequency(E, counts[:5])


def test_diversity_index_on_a_constructed_conflict_set():
    # M = 2 experts, D = 2; norms per row (expert 0, expert 1):
    #   row 0: (3, 0.1) both large and small   row 1: (3, 3) large only
    #   row 2: (0.1, 0.1) small only           row 3: (0.2, 4) both        row 4: (1, 1) neither
    norms = torch.tensor([[3, 0.1], [3, 3], [0.1, 0.1], [0.2, 4], [1, 1]]).T  # (M, n)
    outputs = torch.stack([norms, torch.zeros_like(norms)], dim=-1)  # (M, n, 2): ||O|| = the norm
    everyone = torch.ones(5, dtype=torch.bool)
    assert diversity_index(outputs, everyone, scale=1.0) == pytest.approx(2 / 5)
    assert diversity_index(outputs, torch.tensor([True, True, False, False, False]), scale=1.0) == pytest.approx(1 / 2)
    assert diversity_index(outputs, torch.tensor([False, True, True, False, True]), scale=1.0) == 0
    assert math.isnan(diversity_index(outputs, torch.zeros(5, dtype=torch.bool)))
    # Relative thresholds: the median of the 10 norms is 1, so the default scale gives the same.
    assert median_norm([outputs]) == pytest.approx(1.0)
    assert diversity_index(outputs, everyone) == pytest.approx(2 / 5)
    assert diversity_index(10 * outputs, everyone) == pytest.approx(2 / 5)  # scale-free
    assert diversity_index(outputs, everyone, tau_t=3.5, tau_b=0.5, scale=1.0) == pytest.approx(1 / 5)
    with pytest.raises(ValueError, match="tau_t > tau_b"):
        diversity_index(outputs, everyone, tau_t=0.5, tau_b=2)


def test_conflict_users_by_hand():
    # users, domains, labels:
    # user 7: 1,1,1 in d0 (above) and 0,0,0 in d1 (below) -> conflict
    # user 8: 0,0,0 in d0 (below) and 1,1,1 in d1 (above) -> conflict
    # user 9: 1,1,0 (above) / 1,1,0 (above) -> agrees; user 5: 0,0,1 / 1,1, only 2 rows in d1
    rows = [(7, 0, 1)] * 3 + [(7, 1, 0)] * 3 + [(8, 0, 0)] * 3 + [(8, 1, 1)] * 3 \
        + [(9, 0, 1), (9, 0, 1), (9, 0, 0), (9, 1, 1), (9, 1, 1), (9, 1, 0)] + [(5, 0, 0), (5, 0, 0), (5, 0, 1)] \
        + [(5, 1, 1), (5, 1, 1)]
    users, domains, labels = (torch.tensor(c) for c in zip(*rows))
    labels = labels.float()
    # Domain means: d0 = 6/12, d1 = 7/11; user 5 (2 rows in d1) is below in d0 and above in d1.
    assert conflict_users(users, labels, domains, 0, 1).tolist() == [7, 8]
    assert conflict_users(users, labels, domains, 0, 1, min_rows=2).tolist() == [5, 7, 8]
    pairs = conflict_users_by_pair(users, labels, domains, ("A", "B"))
    assert list(pairs) == [("A", "B")] and pairs["A", "B"].tolist() == [7, 8]


def _tiny_model(tiny, **changes):
    torch.manual_seed(0)
    config = ModelConfig(num_embeddings=3, expert_hidden=(32, 16), tower_hidden=(8,), **changes)
    return build_model(config, vocab_sizes=tiny.vocab_sizes, num_domains=tiny.num_domains,
                       prior_fields=tiny.prior_field_indices())


def test_crocodile_adapter_and_gather(tiny):
    model = _tiny_model(tiny)
    train, val = tiny.subset("train"), tiny.subset("val")
    fields = {"user_id": tiny.field_names.index("user_id"), "item_id": tiny.field_names.index("item_id")}
    seen = {name: exposure_counts(train.features[:, col]) for name, col in fields.items()}
    tables = crocodile_embedding_tables(model, fields, {name: ids for name, (ids, _) in seen.items()})
    expected = [f"{f}_set{p}" for f in fields for p in range(3)] + ["user_id_prior", "item_id_prior"]
    assert sorted(tables) == sorted(expected)
    item_col, d = fields["item_id"], 16
    ids = seen["item_id"][0]
    lookup = model.embedding(torch.stack([torch.zeros_like(ids)] * tiny.num_fields, 1).index_put_(
        (torch.arange(len(ids)), torch.full_like(ids, item_col)), ids))  # (M, n, F*d)
    assert torch.equal(tables["item_id_set2"], lookup[2][:, item_col * d:(item_col + 1) * d])  # same rows as a lookup
    prior_lookup = model.prior_embedding(torch.stack([torch.zeros_like(ids), ids, torch.zeros_like(ids)], 1))[0]
    assert torch.equal(tables["item_id_prior"], prior_lookup[:, d:2 * d])

    rows = sample_rows(val.domains, tiny.num_domains, per_domain=200)
    assert [len(r) for r in rows] == [min(200, int((val.domains == s).sum())) for s in range(5)]
    outputs = crocodile_expert_outputs(model, val.features, val.domains, rows, tiny.domain_names)
    assert outputs["S1"].shape == (3, 200, 16) and model.training
    conflicts = conflict_users_by_pair(train.users, train.labels, train.domains, tiny.domain_names)
    scalars, spectra = gather_diagnostics(
        tables, outputs, row_users={dom: val.users[r] for dom, r in zip(tiny.domain_names, rows)},
        conflicts=conflicts, exposure={"item_id_set0": seen["item_id"][1]})
    assert scalars["ia_item_id_set0"] == information_abundance(tables["item_id_set0"])
    assert [f"ia_item_id_set0_freq{g}" in scalars for g in range(1, 6)] == [True] * 5
    assert scalars["ia_expert2_S6"] == expert_ia(outputs["S6"])[2]
    assert {k for k in scalars if k.startswith("di_")} == {f"di_{a}_{b}" for i, a in enumerate(tiny.domain_names)
                                                            for b in tiny.domain_names[i + 1:]}
    assert all(0 <= v <= 1 for k, v in scalars.items() if k.startswith("di_") and not math.isnan(v))
    assert all(1 - 1e-9 <= v <= 16 + 1e-9 for k, v in scalars.items() if k.startswith("ia_"))
    assert len(spectra["item_id_set0"]) == 16 and len(spectra["expert0_S0"]) == 16
    with pytest.raises(ValueError, match="needs both row_users and conflicts"):
        gather_diagnostics(tables, outputs, conflicts=conflicts)


def test_se_model_has_one_set_and_no_prior(tiny):
    model = _tiny_model(tiny, embedding="SE", gating="standard", aux_loss="none")
    tables = crocodile_embedding_tables(model, {"item_id": 1}, {"item_id": torch.arange(10)})
    assert list(tables) == ["item_id_set0"] and tables["item_id_set0"].shape == (10, 16)
