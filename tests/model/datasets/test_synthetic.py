"""Synthetic world v2 (model/datasets/synthetic.py): shape, planted structure, truth."""
import pytest
import torch

from model.datasets.synthetic import (DOMAIN_NAMES, SIZES, TAIL_DOMAINS, SyntheticSize, WorldKnobs, generate,
                                      make_synthetic, reference_aucs)
from model.diagnostics import conflict_users
from model.metrics import auc


@pytest.fixture(scope="module")
def world_tiny():
    return generate("tiny", seed=0)


def test_deterministic_by_seed(world_tiny):
    data, _ = world_tiny
    again = make_synthetic("tiny", seed=0)
    assert torch.equal(again.features, data.features) and torch.equal(again.labels, data.labels)
    assert not torch.equal(make_synthetic("tiny", seed=1).labels, data.labels)


def test_shape_like_kuairand(world_tiny):
    tiny, _ = world_tiny
    assert tiny.num_rows == 20_000 and tiny.domain_names == DOMAIN_NAMES and tiny.name == "synthetic:tiny"
    assert 18 <= tiny.num_fields <= 22
    assert {"user_id", "item_id", "domain_id"} <= set(tiny.field_names)
    shares = torch.bincount(tiny.domains, minlength=5).float() / tiny.num_rows
    # S0 21 %, S1 67 %, S2 3.5 %, S4 7.7 %, S6 1.6 %
    assert shares.tolist() == pytest.approx([0.207, 0.666, 0.035, 0.077, 0.016], abs=0.01)
    for d in range(5):  # click rate 0.3 in every domain
        assert float(tiny.labels[tiny.domains == d].mean()) == pytest.approx(0.3, abs=0.04), DOMAIN_NAMES[d]
    item_counts = torch.bincount(tiny.features[:, tiny.field_names.index("item_id")]).sort(descending=True).values
    assert item_counts[:10].sum() > 5 * item_counts[100:110].sum()  # long tail


def test_loadings_are_the_documented_subspaces():
    knobs = WorldKnobs()
    w = knobs.loadings()
    blocks = knobs.blocks()
    assert w.shape == (5, 12) and blocks["C"] == [2, 3] and blocks["T_S6"] == [10, 11]
    head, tail = [DOMAIN_NAMES.index(d) for d in ("S0", "S1")], [DOMAIN_NAMES.index(d) for d in TAIL_DOMAINS]
    assert (w[:, blocks["G"]] == 1).all()
    assert (w[head][:, blocks["H"]] == 1).all() and (w[tail][:, blocks["H"]] == 0).all()
    assert (w[head][:, blocks["T"]] == 0.1).all()  # heads barely use the tail directions
    for s, dom in zip(tail, TAIL_DOMAINS):  # each tail domain uses its own block only
        own = torch.zeros(12, dtype=torch.bool)
        own[blocks[f"T_{dom}"]] = True
        assert (w[s, blocks["T"]] == own[blocks["T"]].float()).all()
    assert [int((row > 0).sum()) for row in w] == [12, 12, 6, 6, 6]
    with pytest.raises(ValueError, match="flip_rates must hold 5 probabilities"):
        WorldKnobs(flip_rates=(0.1,))
    with pytest.raises(ValueError, match="conflict_dims must be in \\[0, general_dims=4\\], but got conflict_dims=5"):
        WorldKnobs(conflict_dims=5)


def test_tail_items_and_users_live_in_the_tail_domains(world_tiny):
    data, world = world_tiny
    items, users = data.features[:, data.field_names.index("item_id")], data.users
    tail_rows = torch.isin(data.domains, torch.tensor([DOMAIN_NAMES.index(d) for d in TAIL_DOMAINS]))
    assert world.tail_items.float().mean() == pytest.approx(0.3, abs=0.04)
    assert world.tail_items[items[tail_rows]].float().mean() == pytest.approx(0.5, abs=0.03)
    assert world.tail_items[items[~tail_rows]].float().mean() < 0.01
    assert world.tail_users[users[tail_rows]].float().mean() == pytest.approx(0.5, abs=0.03)
    counts = torch.bincount(items, minlength=len(world.tail_items)).float()
    assert counts[world.tail_items].mean() < counts[~world.tail_items].mean() / 4  # few impressions each


def test_truth_is_the_planted_logit_and_flips_have_the_known_rate(world_tiny):
    data, world = world_tiny
    items = data.features[:, data.field_names.index("item_id")]
    assert torch.allclose(torch.sigmoid(world.logits(data.users, items, data.domains)), data.truth, atol=1e-6)
    # f[u, s] ~ Bernoulli(rho_s); the pair rate is rho_i (1 - rho_j) + rho_j (1 - rho_i).
    s0, s1, s6 = (DOMAIN_NAMES.index(d) for d in ("S0", "S1", "S6"))
    assert world.conflict_rate(s1, s6) == 0.5 and world.conflict_rate(s0, s6) == 0.5
    assert world.conflict_rate(s0, s1) == 0.25
    assert not world.user_flip[:, s1].any()
    for i, j in ((s0, s1), (s1, s6), (s0, s6)):
        assert world.conflicting_users(i, j).float().mean() == pytest.approx(world.conflict_rate(i, j), abs=0.1)


def test_truth_beats_collapsed_and_additive_oracles_where_it_should(monkeypatch):
    # small's users and items with 300 k rows: validation splits large enough for stable per-domain
    # AUCs (tiny's S6 has ~30 validation rows), generated in a few seconds.
    monkeypatch.setitem(SIZES, "mid", SyntheticSize(num_rows=300_000, num_users=1_000, num_items=20_000,
                                                    num_categories=40, num_authors=2_000))
    data, world = generate("mid", seed=0)
    ref = reference_aucs(data, world, "val")
    for dom in DOMAIN_NAMES:
        assert ref["bayes"][dom] > 0.85, dom
        assert ref["bayes"][dom] > ref["additive"][dom] + 0.1, dom
    for dom in TAIL_DOMAINS:  # the T block and the flips carry the tail domains' signal
        assert ref["bayes"][dom] > ref["collapsed"][dom] + 0.08, dom
        assert ref["bayes"][dom] > ref["no_tail_directions"][dom] + 0.025, dom
    assert ref["bayes"]["S0"] > ref["no_user_flips"]["S0"] + 0.05  # S0 users flip at rate 0.25
    assert ref["bayes"]["S1"] == pytest.approx(ref["no_user_flips"]["S1"], abs=1e-9)  # S1 never flips
    assert auc(data.truth, data.labels) == pytest.approx(ref["bayes"]["overall"], abs=0.01)
    # The label-based conflict set of the Diversity Index finds the planted conflicts: far more of
    # the users it flags conflict in truth than of the users it judges.
    train = data.subset("train")
    for a, b in (("S1", "S6"), ("S0", "S1"), ("S2", "S4")):
        i, j = DOMAIN_NAMES.index(a), DOMAIN_NAMES.index(b)
        flagged = conflict_users(train.users, train.labels, train.domains, i, j)
        truth = world.conflicting_users(i, j)
        assert len(flagged) > 50 and truth[flagged].float().mean() > world.conflict_rate(i, j) + 0.1, (a, b)


def test_unknown_size():
    with pytest.raises(ValueError, match="unknown synthetic size 'huge'; valid"):
        make_synthetic("huge")
