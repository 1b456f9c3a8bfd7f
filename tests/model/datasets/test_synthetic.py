import pytest
import torch

from model.metrics import auc
from model.datasets.synthetic import DOMAIN_NAMES, make_synthetic


def test_deterministic_by_seed(tiny):
    again = make_synthetic("tiny", seed=0)
    assert torch.equal(again.features, tiny.features) and torch.equal(again.labels, tiny.labels)
    other = make_synthetic("tiny", seed=1)
    assert not torch.equal(other.labels, tiny.labels)


def test_shape_like_kuairand(tiny):
    assert tiny.num_rows == 20_000 and tiny.domain_names == DOMAIN_NAMES
    assert 18 <= tiny.num_fields <= 22
    assert {"user_id", "item_id", "domain_id"} <= set(tiny.field_names)
    shares = torch.bincount(tiny.domains, minlength=5).float() / tiny.num_rows
    # S0 21 %, S1 67 %, S2 3.5 %, S4 7.7 %, S6 1.6 %
    assert shares.tolist() == pytest.approx([0.207, 0.666, 0.035, 0.077, 0.016], abs=0.01)
    assert float(tiny.labels.mean()) == pytest.approx(0.3, abs=0.03)
    item_counts = torch.bincount(tiny.features[:, tiny.field_names.index("item_id")]).sort(descending=True).values
    assert item_counts[:10].sum() > 5 * item_counts[100:110].sum()  # long tail


def test_planted_conflict_between_domains(tiny):
    # The planted truth is informative in every domain ...
    for d, name in enumerate(DOMAIN_NAMES):
        mask = tiny.domains == d
        assert auc(tiny.truth[mask], tiny.labels[mask]) > 0.75, name
    # ... and the tail domain S6 disagrees with the head domain S1 on half the preference components.
    from model.datasets.synthetic import SIGNS
    assert SIGNS[1] != SIGNS[4] and sum(a != b for a, b in zip(SIGNS[1], SIGNS[4])) == 4


def test_unknown_size():
    with pytest.raises(ValueError, match="unknown synthetic size 'huge'; valid"):
        make_synthetic("huge")
