"""Paper-format tables from the per-variant summary and the stats frame, rendered as Markdown/CSV/LaTeX/HTML.

A cell is the test-split mean over the seeds that finished, with `*` when the row's declared
comparison's verdict is `better` (see sweeper.protocol) and `(k/n)` whenever fewer than the n declared seeds
are in it, so that a mean over fewer seeds is never passed off as a full one.
"""
from __future__ import annotations

import csv
import html
import io
import math
import re
from dataclasses import dataclass, field
from typing import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from sweeper.stats import ComparisonSpec, is_testable

METRIC_LABELS = {"auc": "AUC", "gauc": "gAUC", "logloss": "Logloss", "bayesauc": "Bayes AUC",
                 "bayesgauc": "Bayes gAUC"}
PUBLISHED_NAMES = {"kuairand1k": "KuaiRand-1K", "aliccp": "AliCCP"}
# Synthetic data is KuaiRand-1K-shaped, so its published numbers are the closest reference there is.
REFERENCE_DATASET = "kuairand1k"
MISSING = "n/a"


@dataclass(frozen=True)
class VariantSpec:
    """One row of a sweep's table, in table order. `series`/`x` place it on a sensitivity curve."""

    name: str
    factors: Mapping[str, object] = field(default_factory=dict)
    series: str | None = None
    x: float | None = None


@dataclass(frozen=True)
class Table:
    """Display strings only; the numbers behind them are in summary.csv and stats.csv."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    muted: tuple[bool, ...] = ()  # rows shown greyed out (untested cells), by row index
    # Cells that look like numbers but compare nothing: (row, column, reason); marked DEGENERATE.
    greyed: tuple[tuple[int, int, str], ...] = ()


DEGENERATE = "\u2020"  # a dagger after the value: greyed in HTML, explained in the table's notes


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric)


def domain_label(domain: str) -> str:
    return "Overall" if domain == "overall" else domain


# ---------------------------------------------------------------- cells


def format_value(mean: float, n: int, expected_n: int, significant: bool = False, digits: int = 5) -> str:
    """`0.78683*`, or `0.78683* (5/6)` when seeds are missing, or `n/a (0/6)` with no seed at all."""
    text = MISSING if n == 0 or not math.isfinite(mean) else f"{mean:.{digits}f}" + ("*" if significant else "")
    return f"{text} ({n}/{expected_n})" if n < expected_n else text


def format_lift(lift_pts: float) -> str:
    """Absolute lift in points, as the paper prints it: +0.32 for 0.66373 vs 0.66057."""
    return MISSING if not math.isfinite(lift_pts) else f"{lift_pts:+.2f}"


def row_references(variants: Sequence[str], comparisons: Sequence[ComparisonSpec]) -> dict[str, str]:
    """The reference each row is compared with in the table: its first declared comparison."""
    references: dict[str, str] = {}
    for spec in comparisons:
        references.setdefault(spec.variant, spec.reference)
    return {v: references[v] for v in variants if v in references}


def row_reference_stats(stats: pd.DataFrame, comparisons: Sequence[ComparisonSpec]) -> pd.DataFrame:
    """The stats rows of each variant's table comparison (its first declared one)."""
    references = row_references(list(dict.fromkeys(stats["variant"])), comparisons)
    keep = [references.get(v) == r for v, r in zip(stats["variant"], stats["reference"])]
    return stats[keep].reset_index(drop=True)


def _lookup(frame: pd.DataFrame, keys: Sequence[str]) -> dict[tuple, pd.Series]:
    return {tuple(row[k] for k in keys): row for _, row in frame.iterrows()}


# ---------------------------------------------------------------- layouts


def rows_table(summary: pd.DataFrame, stats: pd.DataFrame, variants: Sequence[str],
               comparisons: Sequence[ComparisonSpec], metrics: Sequence[str], domains: Sequence[str],
               expected_n: int, title: str, digits: int = 5, no_overall: Collection[str] = ()) -> Table:
    """Tables 2-5 layout: a row per variant; per metric a column per domain and the overall lift.

    The lift column is the overall domain's lift in points vs the row's reference ("-" on reference
    rows, empty on rows with no declared comparison); it is left out when "overall" is not a domain.
    no_overall: variants whose overall metrics mean nothing (Single Domain: its domains' scores
    come from different models) show "-" there, as in the paper.
    """
    means = _lookup(summary, ("variant", "metric", "domain"))
    tested = _lookup(stats, ("variant", "reference", "metric", "domain"))
    references = row_references(variants, comparisons)
    reference_rows = {spec.reference for spec in comparisons}
    columns = ["Variant"]
    for metric in metrics:
        columns += [f"{metric_label(metric)} {domain_label(d)}" for d in domains]
        if "overall" in domains:
            columns.append(f"{metric_label(metric)} lift (pts)")
    constant = constant_cells(summary, variants, metrics, domains)
    rows, greyed = [], []
    for variant in variants:
        row = [variant]
        for metric in metrics:
            for domain in domains:
                if domain == "overall" and variant in no_overall:
                    row.append("-")
                    continue
                cell = means[(variant, metric, domain)]
                test = tested.get((variant, references.get(variant), metric, domain))
                significant = bool(test["significant"]) if test is not None else False
                text = format_value(cell["mean"], int(cell["n"]), expected_n, significant, digits)
                reason = constant.get((metric, domain)) or (
                    test["test"] if test is not None and not is_testable(test["test"]) else "")
                if reason and int(cell["n"]):
                    greyed.append((len(rows), len(row), reason))
                    text += DEGENERATE
                row.append(text)
            if "overall" in domains and variant in no_overall:
                row.append("-")
            elif "overall" in domains:
                test = tested.get((variant, references.get(variant), metric, "overall"))
                row.append(format_lift(test["lift_pts"]) if test is not None
                           else "-" if variant in reference_rows else "")
        rows.append(tuple(row))
    return Table(title, tuple(columns), tuple(rows), _notes(stats, expected_n, references) + _degenerate_notes(greyed),
                 greyed=tuple(greyed))


def constant_cells(summary: pd.DataFrame, variants: Sequence[str], metrics: Sequence[str],
                   domains: Sequence[str]) -> dict[tuple[str, str], str]:
    """(metric, domain) columns where every run of every variant scored the same: nothing to compare
    (e.g. a tail domain's gAUC resting on one user), whatever a mean of 1.00000 suggests."""
    out = {}
    shown = summary[summary["variant"].isin(list(variants)) & (summary["n"] > 0)]
    for (metric, domain), cells in shown.groupby(["metric", "domain"], sort=False):
        if metric not in metrics or domain not in domains or cells["n"].sum() < 2:
            continue
        means = cells["mean"].to_numpy(dtype=float)
        spread = cells["std"].fillna(0).abs().max()
        if np.isfinite(means).all() and np.ptp(means) <= 1e-12 * max(1.0, abs(means[0])) and spread <= 1e-12:
            out[(metric, domain)] = (f"not testable: {metric_label(metric)} {domain_label(domain)} is {means[0]:.5g} "
                                     f"in every run of every variant (e.g. a gAUC resting on one user)")
    return out


def _degenerate_notes(greyed: Sequence[tuple[int, int, str]]) -> tuple[str, ...]:
    counts: dict[str, int] = {}
    for _, _, reason in greyed:
        counts[reason] = counts.get(reason, 0) + 1
    return tuple(f"{DEGENERATE} {reason} ({count} cell{'s' if count > 1 else ''})" for reason, count in counts.items())


def num_embeddings_table(summary: pd.DataFrame, stats: pd.DataFrame, variants: Sequence[VariantSpec],
                         comparisons: Sequence[ComparisonSpec], metrics: Sequence[str], expected_n: int,
                         title: str, domain: str = "overall", digits: int = 5) -> Table:
    """Table 6 layout: a column per number of embedding sets, a row per series and a lift row.

    Only `domain` (overall, as in the paper) is shown; rows_table gives the per-domain view.
    """
    xs = sorted({v.x for v in variants if v.x is not None})
    series = list(dict.fromkeys(v.series for v in variants if v.series is not None))
    at = {(v.series, v.x): v.name for v in variants}
    means = _lookup(summary, ("variant", "metric", "domain"))
    tested = _lookup(stats, ("variant", "reference", "metric", "domain"))
    references = row_references([v.name for v in variants], comparisons)
    compared_series = [s for s in series if any(at.get((s, x)) in references for x in xs)]
    rows = []
    for metric in metrics:
        label = metric_label(metric)
        for name in series:
            cells = []
            for x in xs:
                variant = at.get((name, x))
                if variant is None:
                    cells.append("")
                    continue
                test = tested.get((variant, references.get(variant), metric, domain))
                cell = means[(variant, metric, domain)]
                cells.append(format_value(cell["mean"], int(cell["n"]), expected_n,
                                          bool(test["significant"]) if test is not None else False, digits))
            rows.append((f"{name} {label}", *cells))
        for name in compared_series:
            cells = []
            for x in xs:
                variant = at.get((name, x))
                test = tested.get((variant, references.get(variant), metric, domain))
                cells.append(format_lift(test["lift_pts"]) if test is not None else "")
            suffix = f" {name}" if len(compared_series) > 1 else ""
            rows.append((f"{label} lift (pts){suffix}", *cells))
    columns = ("#Emb", *[f"{x:g}" for x in xs])
    return Table(title, columns, tuple(rows), _notes(stats, expected_n, references))


def _notes(stats: pd.DataFrame, expected_n: int, references: Mapping[str, str]) -> tuple[str, ...]:
    notes = []
    if references:
        tested = stats[stats["p_value"].notna()] if len(stats) else stats
        tests = ", ".join(sorted(set(tested["test"]))) if len(tested) else "none"
        present = [f for f in ("primary", "ablation", "secondary") if f in set(stats["family"])]
        families = ", ".join(f"{f} {int(stats.loc[stats['family'] == f, 'family_size'].max())}" for f in present)
        notes.append(f"Stars mark the verdict `better` vs the row's reference: Holm-adjusted p < 0.05 within the "
                     f"cell's family (tests per family: {families}) and an improvement; per-domain cells are tested "
                     f"only for a variant whose primary hypotheses hold. Test used: {tests}.")
        untestable = int(stats["test"].str.startswith("not testable").sum()) if len(stats) else 0
        if untestable:
            notes.append(f"{untestable} cell(s) are not testable (degenerate: see the test column of stats.csv).")
        pairs = "; ".join(f"{v} vs {r}" for v, r in references.items())
        notes.append(f"Lift (pts) = 100 * (mean - reference mean), overall domain, as the paper prints it; "
                     f"declared comparisons: {pairs}.")
    notes.append(f"Means over seeds (test split); (k/{expected_n}) marks a cell with only k of the "
                 f"{expected_n} declared seeds finished.")
    return tuple(notes)


def frame_table(frame: pd.DataFrame, title: str, digits: int = 5, notes: Sequence[str] = (),
                muted: Sequence[bool] = ()) -> Table:
    """Any frame as a Table; floats with `digits` significant digits (alphas and p-values are tiny), NaN as n/a."""
    def text(value: object) -> str:
        if isinstance(value, (float, np.floating)):
            return MISSING if not math.isfinite(value) else f"{value:.{digits}g}"
        return str(value)
    rows = tuple(tuple(text(v) for v in record) for record in frame.itertuples(index=False))
    return Table(title, tuple(str(c) for c in frame.columns), rows, tuple(notes), tuple(bool(m) for m in muted))


# ---------------------------------------------------------------- search and published numbers


def rank_configurations(runs: pd.DataFrame, objective: str, direction: str, top_k: int,
                        factor_columns: Sequence[str], metrics: Sequence[str] = ("auc", "gauc")) -> pd.DataFrame:
    """The top_k variants by mean objective over seeds, with the factors that vary in the search."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if len(runs) and objective not in runs.columns:
        raise ValueError(f"objective column {objective!r} is not in the results; columns: {sorted(runs.columns)}")
    varying = [c for c in factor_columns if c in runs.columns and runs[c].astype(str).nunique() > 1]
    tests = [f"test_{m}_overall" for m in metrics if f"test_{m}_overall" in runs.columns]
    # A configuration is named by its parameters; the trial id (variant) comes last.
    columns = ["rank", *varying, f"{objective} mean", f"{objective} std", "n", *[f"{t} mean" for t in tests],
               "variant"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    grouped = runs.groupby("variant", sort=False)
    ranked = pd.DataFrame({
        "variant": list(grouped.groups),
        "n": grouped[objective].count().to_numpy(),
        f"{objective} mean": grouped[objective].mean().to_numpy(),
        f"{objective} std": grouped[objective].std(ddof=1).to_numpy(),
    })
    for column in varying:  # a variant is one configuration: its factors are the same on every seed
        ranked[column] = grouped[column].first().to_numpy()
    for column in tests:
        ranked[f"{column} mean"] = grouped[column].mean().to_numpy()
    # Ties (equal means) in a fixed order: by parameters, then trial id.
    ranked = ranked.sort_values([f"{objective} mean", *varying, "variant"],
                                ascending=[direction == "minimize", *[True] * (len(varying) + 1)], kind="stable",
                                na_position="last").head(top_k)
    ranked.insert(0, "rank", range(1, len(ranked) + 1))
    return ranked[columns].reset_index(drop=True)


def published_label(dataset: str | None) -> str:
    if dataset in PUBLISHED_NAMES:
        return f"published ({PUBLISHED_NAMES[dataset]})"
    return f"published ({PUBLISHED_NAMES[REFERENCE_DATASET]}, reference only — different data)"


def published_comparison(summary: pd.DataFrame, published: pd.DataFrame, dataset: str | None, table: str,
                         method_of: Mapping[str, str], variants: Sequence[str], metrics: Sequence[str],
                         domains: Sequence[str]) -> pd.DataFrame:
    """Ours next to the paper's numbers for every (variant, metric, domain) the paper reports.

    On the paper's own datasets the difference is shown; otherwise (synthetic data) the KuaiRand-1K
    numbers appear as a labelled reference only, with no difference, since the data differ.
    """
    matched = dataset in PUBLISHED_NAMES
    source = dataset if matched else REFERENCE_DATASET
    label = published_label(dataset)
    paper = published[(published["dataset"] == source) & (published["table"] == table)]
    paper_values = {(r.method, r.metric, r.domain): float(r.value) for r in paper.itertuples(index=False)}
    ours = _lookup(summary, ("variant", "metric", "domain"))
    rows = []
    for variant in variants:
        if variant not in method_of:
            continue
        for metric in metrics:
            for domain in domains:
                value = paper_values.get((method_of[variant], metric, domain))
                if value is None:
                    continue
                cell = ours.get((variant, metric, domain))
                mean = float(cell["mean"]) if cell is not None else math.nan
                row = {"variant": variant, "published method": method_of[variant], "metric": metric,
                       "domain": domain, "n": int(cell["n"]) if cell is not None else 0, "ours": mean, label: value}
                if matched:
                    row["ours - published"] = mean - value
                rows.append(row)
    columns = ["variant", "published method", "metric", "domain", "n", "ours", label]
    return pd.DataFrame(rows, columns=columns + (["ours - published"] if matched else []))


# ---------------------------------------------------------------- rendering


def to_markdown(table: Table) -> str:
    lines = [f"**{table.title}**", "", _md_row(table.columns),
             "|" + "|".join([":---"] + ["---:"] * (len(table.columns) - 1)) + "|"]
    lines += [_md_row(row) for row in table.rows]
    for note in table.notes:  # one paragraph each
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return buffer.getvalue()


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "—": "---"}


def _latex(text: str) -> str:
    escaped = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    # A significance star (right after a number) is a superscript in print, as in the paper.
    return re.sub(r"(?<=\d)\*", r"$^{*}$", escaped)


def to_latex(table: Table) -> str:
    """A booktabs table (needs \\usepackage{booktabs}); notes go into the caption."""
    spec = "l" + "r" * (len(table.columns) - 1)
    caption = " ".join([_latex(table.title) + "."] + [_latex(note) for note in table.notes])
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{caption}}}", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(_latex(c) for c in table.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex(c) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    muted = table.muted or (False,) * len(table.rows)
    body = "".join(("<tr class='muted'>" if grey else "<tr>") + "".join(f"<td>{html.escape(c)}</td>" for c in row)
                   + "</tr>" for row, grey in zip(table.rows, muted))
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in table.notes)
    return (f"<h3>{html.escape(table.title)}</h3><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>{notes}")
