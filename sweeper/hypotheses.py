"""Declared hypotheses: the claims a sweep tests, fixed in the space file before any result exists.

A hypothesis says "variant improves on reference in these metrics on this domain":
  {variant: Crocodile, reference: MMoE, metrics: [auc, gauc], domain: overall}
It is one member of the primary family per metric (Holm across the family). The
intersection-union form says "variant beats every one of these references":
  {variant: Crocodile, reference: all, test: intersection-union, metrics: [auc, gauc]}
It is a single member whose verdict is `better` only when every pairwise one-sided test (each
reference x metric) passes; it needs no adjustment of its own, because every one must pass.
`reference: all` means every other variant of the sweep, in table order.
Parsing is shared by space files (sweeper.space) and sweep.json (sweeper.report); `fail(key,
problem)` raises the caller's error type with the caller's file name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, NoReturn, Sequence

SINGLE = "single"
INTERSECTION_UNION = "intersection-union"
TESTS = (SINGLE, INTERSECTION_UNION)
ALL = "all"
KEYS = {"variant", "reference", "metrics", "domain", "test"}

Cell = tuple[str, str, str, str]  # (variant, reference, metric, domain)
Fail = Callable[[str, str], NoReturn]


@dataclass(frozen=True)
class Hypothesis:
    variant: str
    references: tuple[str, ...]  # one for SINGLE; ("all",) until resolved against the variants
    metrics: tuple[str, ...]
    domain: str = "overall"
    test: str = SINGLE

    def resolved(self, variants: Sequence[str]) -> "Hypothesis":
        """`reference: all` replaced by every other variant, in table order."""
        if self.references != (ALL,):
            return self
        return Hypothesis(self.variant, tuple(v for v in variants if v != self.variant), self.metrics,
                          self.domain, self.test)

    def record(self) -> dict:
        """The sweep.json form."""
        return {"variant": self.variant, "references": list(self.references), "metrics": list(self.metrics),
                "domain": self.domain, "test": self.test}


@dataclass(frozen=True)
class Unit:
    """One member of the primary family: one p-value, one verdict."""

    name: str  # "H1 auc" for a single hypothesis's metric, "H2" for an intersection-union one
    hypothesis: Hypothesis
    cells: tuple[Cell, ...]


def parse(entry: object, where: str, variants: Sequence[str] | None, metrics: Sequence[str],
          fail: Fail, extra_keys: Iterable[str] = ()) -> Hypothesis:
    """One declared hypothesis, checked. variants None: names are checked later (base_from sweeps)."""
    if not isinstance(entry, Mapping):
        fail(where, f"expected a mapping like {{variant: A, reference: B}}, got {entry!r}")
    allowed = KEYS | set(extra_keys) | {"references"}
    for key in entry:
        if key not in allowed:
            fail(f"{where}.{key}", f"unknown key; valid keys: {sorted(KEYS | set(extra_keys))}")
    test = entry.get("test", SINGLE)
    if test not in TESTS:
        fail(f"{where}.test", f"must be one of {list(TESTS)}, got {test!r}")
    variant = entry.get("variant")
    if not isinstance(variant, str) or not variant:
        fail(f"{where}.variant", f"must name a variant, got {variant!r}")
    references = _references(entry, where, test, fail)
    chosen = entry.get("metrics", list(metrics))
    if isinstance(chosen, str):
        chosen = [chosen]
    if not isinstance(chosen, list) or not chosen or not all(m in metrics for m in chosen):
        fail(f"{where}.metrics", f"must be a non-empty list of the sweep's metrics {list(metrics)}, got {chosen!r}")
    if len(set(chosen)) != len(chosen):
        fail(f"{where}.metrics", f"has duplicates: {chosen}")
    domain = entry.get("domain", "overall")
    if not isinstance(domain, str) or not domain:
        fail(f"{where}.domain", f"must be a domain name or 'overall', got {domain!r}")
    hypothesis = Hypothesis(variant, references, tuple(chosen), domain, test)
    if variants is not None:
        check_names(hypothesis, where, variants, fail)
    return hypothesis


def _references(entry: Mapping, where: str, test: str, fail: Fail) -> tuple[str, ...]:
    raw = entry.get("references", entry.get("reference"))
    listed = [raw] if isinstance(raw, str) else raw
    if not isinstance(listed, list) or not listed or not all(isinstance(r, str) and r for r in listed):
        fail(f"{where}.reference", f"must name the reference variant, got {raw!r}")
    if test == SINGLE and (len(listed) != 1 or listed == [ALL]):
        fail(f"{where}.reference", f"a single hypothesis has one reference, got {raw!r}; to claim a variant beats "
                                   f"several, use test: {INTERSECTION_UNION}")
    if ALL in listed and len(listed) > 1:
        fail(f"{where}.reference", f"'all' stands alone (every other variant), got {listed}")
    return tuple(listed)


def check_names(hypothesis: Hypothesis, where: str, variants: Sequence[str], fail: Fail) -> None:
    if hypothesis.variant not in variants:
        fail(f"{where}.variant", f"{hypothesis.variant!r} is not a variant; variants: {list(variants)}")
    resolved = hypothesis.resolved(variants)
    if not resolved.references:
        fail(f"{where}.reference", f"'all' leaves no other variant to compare {hypothesis.variant!r} with")
    for reference in resolved.references:
        if reference not in variants:
            fail(f"{where}.reference", f"{reference!r} is not a variant; variants: {list(variants)}")
        if reference == hypothesis.variant:
            fail(f"{where}.reference", f"{hypothesis.variant!r} cannot be its own reference")


def check_unique(hypotheses: Sequence[Hypothesis], wheres: Sequence[str], fail: Fail) -> None:
    """A cell claimed twice would be counted twice in the family. wheres[i] names hypothesis i's entry."""
    seen: dict[Cell, str] = {}
    for where, hypothesis in zip(wheres, hypotheses):
        for cell in cells(hypothesis):
            if cell in seen:
                fail(where, f"repeats {cell[0]} vs {cell[1]}, {cell[2]} {cell[3]}, already declared by {seen[cell]}")
            seen[cell] = where


def cells(hypothesis: Hypothesis) -> list[Cell]:
    return [(hypothesis.variant, reference, metric, hypothesis.domain)
            for reference in hypothesis.references for metric in hypothesis.metrics]


def units(hypotheses: Sequence[Hypothesis]) -> tuple[Unit, ...]:
    """The primary family, in declaration order (references must already be resolved)."""
    out = []
    for index, hypothesis in enumerate(hypotheses, start=1):
        if hypothesis.test == INTERSECTION_UNION:
            out.append(Unit(f"H{index}", hypothesis, tuple(cells(hypothesis))))
            continue
        for metric in hypothesis.metrics:
            out.append(Unit(f"H{index} {metric}", hypothesis,
                            ((hypothesis.variant, hypothesis.references[0], metric, hypothesis.domain),)))
    return tuple(out)


def from_records(records: Sequence[Mapping], variants: Sequence[str], metrics: Sequence[str]) -> tuple[Hypothesis, ...]:
    """sweep.json's hypotheses, checked against its variants; ValueError names the entry and key."""
    def fail(key: str, problem: str) -> NoReturn:
        raise ValueError(f"sweep.json {key}: {problem}")
    if not isinstance(records, list):
        fail("hypotheses", f"must be a list, got {type(records).__name__}")
    parsed = tuple(parse(r, f"hypotheses[{i}]", variants or None, metrics, fail) for i, r in enumerate(records))
    parsed = tuple(h.resolved(variants) for h in parsed)
    check_unique(parsed, [f"hypotheses[{i}]" for i in range(len(parsed))], fail)
    return parsed
