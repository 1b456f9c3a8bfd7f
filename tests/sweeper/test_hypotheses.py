"""Declared hypotheses: parsing, `all`, primary-family members, and errors that name the entry and key."""
import pytest

from sweeper import hypotheses as hyp
from sweeper.hypotheses import INTERSECTION_UNION, Hypothesis

VARIANTS = ["MMoE", "ME-MMoE", "Crocodile"]


def fail(key, problem):
    raise ValueError(f"f.yaml: {key}: {problem}")


def parse(entry, variants=VARIANTS):
    return hyp.parse(entry, "hypotheses[0]", variants, ["auc", "gauc"], fail)


def test_single_hypothesis_is_one_member_per_metric():
    h = parse({"variant": "Crocodile", "reference": "MMoE"})
    assert h == Hypothesis("Crocodile", ("MMoE",), ("auc", "gauc"), "overall", "single")
    members = hyp.units([h])
    assert [m.name for m in members] == ["H1 auc", "H1 gauc"]
    assert members[1].cells == (("Crocodile", "MMoE", "gauc", "overall"),)


def test_intersection_union_against_all_is_one_member():
    h = parse({"variant": "Crocodile", "reference": "all", "test": INTERSECTION_UNION, "metrics": ["auc", "gauc"],
               "domain": "overall"}).resolved(VARIANTS)
    assert h.references == ("MMoE", "ME-MMoE")
    (member,) = hyp.units([h])
    assert member.name == "H1" and len(member.cells) == 4
    assert Hypothesis.record(h) == {"variant": "Crocodile", "references": ["MMoE", "ME-MMoE"],
                                    "metrics": ["auc", "gauc"], "domain": "overall", "test": INTERSECTION_UNION}
    assert hyp.from_records([h.record()], VARIANTS, ["auc", "gauc"]) == (h,)


@pytest.mark.parametrize("entry, message", [
    ({"variant": "Crocodile"}, "hypotheses\\[0\\].reference: must name the reference variant, got None"),
    ({"variant": "Croc", "reference": "MMoE"}, "hypotheses\\[0\\].variant: 'Croc' is not a variant"),
    ({"variant": "Crocodile", "reference": "MMOE"}, "hypotheses\\[0\\].reference: 'MMOE' is not a variant"),
    ({"variant": "MMoE", "reference": "MMoE"}, "'MMoE' cannot be its own reference"),
    ({"variant": "Crocodile", "reference": "all"}, "a single hypothesis has one reference, got 'all'"),
    ({"variant": "Crocodile", "reference": ["MMoE", "ME-MMoE"]}, "use test: intersection-union"),
    ({"variant": "Crocodile", "reference": ["all", "MMoE"], "test": INTERSECTION_UNION}, "'all' stands alone"),
    ({"variant": "Crocodile", "reference": "MMoE", "metrics": ["auc", "ndcg"]},
     "hypotheses\\[0\\].metrics: must be a non-empty list of the sweep's metrics"),
    ({"variant": "Crocodile", "reference": "MMoE", "metrics": ["auc", "auc"]}, "metrics: has duplicates"),
    ({"variant": "Crocodile", "reference": "MMoE", "test": "bonferroni"}, "hypotheses\\[0\\].test: must be one of"),
    ({"variant": "Crocodile", "reference": "MMoE", "direction": "up"}, "hypotheses\\[0\\].direction: unknown key"),
    ({"variant": "Crocodile", "reference": "MMoE", "domain": ""}, "hypotheses\\[0\\].domain: must be a domain"),
    ("Crocodile > MMoE", "hypotheses\\[0\\]: expected a mapping"),
])
def test_bad_entries_name_the_key(entry, message):
    with pytest.raises(ValueError, match=message):
        parse(entry)


def test_all_with_a_single_variant_leaves_nothing():
    with pytest.raises(ValueError, match="'all' leaves no other variant"):
        parse({"variant": "Crocodile", "reference": "all", "test": INTERSECTION_UNION}, variants=["Crocodile"])


def test_a_cell_declared_twice_is_refused():
    claims = [Hypothesis("Crocodile", ("MMoE",), ("auc",)), Hypothesis("Crocodile", ("MMoE",), ("auc", "gauc"))]
    with pytest.raises(ValueError, match="hypotheses\\[1\\]: repeats Crocodile vs MMoE, auc overall"):
        hyp.check_unique(claims, ["hypotheses[0]", "hypotheses[1]"], fail)
    with pytest.raises(ValueError, match="sweep.json hypotheses: must be a list"):
        hyp.from_records({"variant": "x"}, VARIANTS, ["auc"])
