"""The frozen first world (model/datasets/synthetic_v1.py): bit-identical to what synthetic:* was."""
import hashlib

import pytest
import torch

from model.datasets.synthetic_v1 import SIGNS, make_synthetic_v1
from model.metrics import auc

# sha256 of the columns and schema of synthetic:tiny seeds 0 and 1 as generated before world v2
# (commit 403d06f, model/synthetic.py).
CHECKSUMS = {0: "2343074216031020b962d155e2b3b141d688d4ab8e02b6ee8aef7e9e3bd2785e",
             1: "7890611485770e3e6b886b00bcc91d8a03797c91d05ca4dce2acece139a8b8a8"}


def digest(data) -> str:
    h = hashlib.sha256()
    for t in (data.features, data.labels, data.domains, data.users, data.split, data.truth):
        h.update(t.contiguous().numpy().tobytes())
    h.update(repr((data.field_names, data.vocab_sizes, data.domain_names)).encode())
    return h.hexdigest()


@pytest.mark.parametrize("seed", [0, 1])
def test_bit_identical_to_the_old_generator(seed):
    data = make_synthetic_v1("tiny", seed)
    assert digest(data) == CHECKSUMS[seed]
    assert data.name == "synthetic-v1:tiny"


def test_planted_conflict_between_domains():
    tiny = make_synthetic_v1("tiny")
    for d in range(5):
        mask = tiny.domains == d
        assert auc(tiny.truth[mask], tiny.labels[mask]) > 0.75
    assert SIGNS[1] != SIGNS[4] and sum(a != b for a, b in zip(SIGNS[1], SIGNS[4])) == 4
    assert float(tiny.labels.mean()) == pytest.approx(0.3, abs=0.03)
    assert torch.bincount(tiny.domains).argmax() == 1  # S1 is the big domain
