"""report.html: the answer first, the evidence after it, the bookkeeping last.

Order: verdicts, the paper's claims on this sweep, the paper-format table, plots, the mechanism
plots, ours next to the paper, (searches: Optuna's importances and plots, and no claims), missing seeds, stats.csv and the protocol collapsed, notes, metadata.
The page is a Jinja2 template (templates/report.html.j2, autoescaped); tables are pandas Stylers,
which carry the cell classes (greyed degenerate cells, muted untested rows) and their reasons as
title attributes. Self-contained: images are inlined, nothing is fetched.
"""
from __future__ import annotations

import base64
import importlib.resources
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import jinja2
import numpy as np
import pandas as pd
from markupsafe import Markup

from sweeper import tables
from sweeper.tables import Table

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1320px;margin:1.5em auto;padding:0 1em;
  color:#1d1d1f;line-height:1.45}
h1{margin:.2em 0;font-size:1.7em}h2{margin:1.6em 0 .4em;font-size:1.25em;border-bottom:1px solid #e3e3e3;
  padding-bottom:.15em}h3{font-size:1.05em;margin:1em 0 .3em}
.facts{margin:0;color:#555;font-size:.92em}.facts span:not(:last-child)::after{content:" \\00b7 ";color:#aaa}
.caption{margin:.2em 0 .4em;font-weight:600;font-size:.95em}
.scroll{overflow-x:auto;max-width:100%}.scroll.tall{max-height:34em;overflow-y:auto}
table{border-collapse:collapse;font-size:.84em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d8d8d8;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f3f3f5;font-weight:600}th.row_heading,td.first,th.first{text-align:left}
thead th{position:sticky;top:0;background:#f3f3f5}
td.degenerate{color:#9a9a9a;background:#f6f6f6}tr.muted td,td.muted{color:#8c8c8c;background:#fafafa}
.note{font-size:.85em;color:#555;margin:.25em 0}.caution{color:#8a5a00;font-weight:600;margin:.4em 0}
.protocol{font-size:.9em;color:#333}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600;color:#234}
figure{margin:1em 0;overflow-x:auto}img{max-width:100%;height:auto}
figure img{min-width:560px}/* on a phone the plot keeps readable labels and scrolls sideways */figcaption{font-size:.88em;color:#444}
ul.verdicts{padding-left:1.2em}li.verdict{margin:.35em 0}li.better{color:#185c1e}li.worse{color:#8a1c1c}
li.undertrained{color:#8a5a00;font-weight:600}li.data-limited{color:#6b5200}li.not-testable{color:#777}
ul.claims{padding-left:1.2em}li.claim{margin:.35em 0}li.claim details{margin:.1em 0 .3em}
.status{display:inline-block;min-width:9.5em;font-weight:600}li.reproduced .status{color:#185c1e}
li.not-reproduced .status{color:#8a1c1c}li.not-testable-here .status,li.not-testable-here{color:#777}
table.meta th{text-align:left;white-space:nowrap}table.meta td{text-align:left;white-space:normal}
@media (max-width:640px){body{margin:.8em auto;padding:0 .6em}h1{font-size:1.35em}table{font-size:.78em}}
"""


@dataclass(frozen=True)
class Figure:
    title: str
    png: Path
    caption: str


@dataclass(frozen=True)
class Page:
    """Everything the template shows, already decided by the report (no analysis here)."""

    name: str
    facts: Sequence[str]
    headline: Sequence[tuple[str, str]]  # (sentence, css class)
    verdicts: pd.DataFrame | None
    tables: Sequence[tuple[str, Table]]  # (section heading, table)
    figures: Sequence[Figure]
    published: pd.DataFrame | None  # the long published.csv frame
    published_label: str
    optuna: dict | None  # importances frame, caution, notes, figures
    missing: pd.DataFrame | None
    stats: pd.DataFrame | None
    protocol: str
    notes: Sequence[str]
    meta: Sequence[tuple[str, str]]
    partial: str | None = None  # why a stopped sweep's report is incomplete
    # The paper's claims: heading, intro, items (status, kind, line, evidence), figures, notes.
    claims: dict | None = None


def render(page: Page) -> str:
    template = _environment().get_template("report.html.j2")
    blocks = [{"heading": heading, "title": table.title, "html": Markup(table_html(table, f"table{index}")),
               "notes": table.notes} for index, (heading, table) in enumerate(page.tables)]
    optuna = None
    if page.optuna is not None:
        frame = page.optuna.get("importances")
        optuna = {"caution": page.optuna.get("caution", ""), "notes": page.optuna.get("notes", ()),
                  "importances": Markup(frame_html(frame, "importances")) if frame is not None else None,
                  "figures": [_figure(f) for f in page.optuna.get("figures", ())]}
    stats = None
    if page.stats is not None and len(page.stats):
        stats = {"rows": len(page.stats),
                 "html": Markup(frame_html(page.stats, "stats", muted=page.stats["p_value"].isna()))}
    claims = None
    if page.claims is not None:
        claims = {**page.claims, "figures": [_figure(f) for f in page.claims.get("figures", ())]}
    return template.render(
        css=Markup(CSS), claims=claims, name=page.name, facts=page.facts, headline=page.headline,
        verdict_table=Markup(frame_html(page.verdicts, "verdicts")) if page.verdicts is not None and len(page.verdicts) else None,
        verdict_rows=len(page.verdicts) if page.verdicts is not None else 0, tables=blocks,
        figures=[_figure(f) for f in page.figures],
        published=_published_block(page.published, page.published_label) if page.published is not None else None,
        optuna=optuna, missing=Markup(frame_html(page.missing, "missing")) if page.missing is not None and len(page.missing)
        else None, stats=stats, protocol=page.protocol, notes=[n for n in page.notes if n], meta=page.meta,
        partial=page.partial)


def _environment() -> jinja2.Environment:
    folder = importlib.resources.files("sweeper") / "templates"
    return jinja2.Environment(loader=jinja2.FunctionLoader(lambda name: (folder / name).read_text()),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)


def _figure(figure: Figure) -> dict:
    encoded = base64.b64encode(figure.png.read_bytes()).decode("ascii")
    return {"title": figure.title, "src": f"data:image/png;base64,{encoded}", "caption": figure.caption}


# ---------------------------------------------------------------- tables as Stylers


def table_html(table: Table, uuid: str) -> str:
    """A paper-format Table: display strings as they are, greyed cells with their reason on hover."""
    frame = pd.DataFrame(list(table.rows), columns=list(table.columns))
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    tips = pd.DataFrame("", index=frame.index, columns=frame.columns)
    for row, column, reason in table.greyed:
        classes.iat[row, column] += " degenerate"
        tips.iat[row, column] = reason
    for row, muted in enumerate(table.muted):
        if muted:
            classes.iloc[row] += " muted"
    classes.iloc[:, 0] += " first"
    styler = frame.style.hide(axis="index").format(escape="html").set_td_classes(classes).set_table_styles(_LABEL_FIRST)
    if table.greyed:
        styler = styler.set_tooltips(tips, as_title_attribute=True)
    return _to_html(styler, uuid)


def frame_html(frame: pd.DataFrame, uuid: str, muted: pd.Series | None = None, digits: int = 4) -> str:
    """Any frame: floats to `digits` significant digits, NaN as n/a, muted rows greyed."""
    frame = frame.reset_index(drop=True)
    styler = frame.style.hide(axis="index").format(_number(digits), escape="html", na_rep=tables.MISSING)
    classes = pd.DataFrame("", index=frame.index, columns=frame.columns)
    if muted is not None:
        for row, grey in enumerate(muted.to_numpy()):
            if grey:
                classes.iloc[row] += " muted"
    classes.iloc[:, 0] += " first"
    return _to_html(styler.set_td_classes(classes).set_table_styles(_LABEL_FIRST), uuid)


_LABEL_FIRST = [{"selector": "th.col0", "props": "text-align: left;"}]  # the label column's header


def _number(digits: int):
    def text(value: object) -> str:
        if isinstance(value, (bool, np.bool_)):
            return str(value)
        if isinstance(value, (float, np.floating)):
            return tables.MISSING if not math.isfinite(value) else f"{value:.{digits}g}"
        return str(value)
    return text


def _to_html(styler, uuid: str) -> str:
    # A fixed uuid per table: the same results render the same page (Styler's default is random).
    return styler.set_table_attributes("class='data'").to_html(table_uuid=uuid)


def _published_block(published: pd.DataFrame, label: str) -> dict | None:
    """Ours and the paper's number side by side: a row per variant, a column pair per metric and domain."""
    if published.empty:
        return None
    diff = "ours - published" in published.columns
    values = ["ours", label] + (["ours - published"] if diff else [])
    short = {"ours": "ours", label: "paper", "ours - published": "diff"}
    named = published.assign(cell=[f"{tables.metric_label(m)} {tables.domain_label(d)}"
                                   for m, d in zip(published["metric"], published["domain"])])
    cells = list(dict.fromkeys(named["cell"]))
    wide = named.pivot_table(index="variant", columns="cell", values=values, aggfunc="first",
                             sort=False).swaplevel(axis=1)  # columns (cell, value)
    wide = wide.reindex(index=list(dict.fromkeys(named["variant"])),  # table order, not the alphabet's
                        columns=pd.MultiIndex.from_product([cells, values]))
    wide.columns = pd.MultiIndex.from_tuples([(cell, short[value]) for cell, value in wide.columns])
    wide.index.name = None
    formats = {column: (_signed if column[1] == "diff" else _plain) for column in wide.columns}
    html = _to_html(wide.style.format(formats, escape="html"), "published")
    methods = dict(zip(published["variant"], published["published method"]))
    notes = [f"paper = {label}; ours = mean over this sweep's finished seeds, test split.",
             "Published methods: " + "; ".join(f"{v}: {m}" for v, m in methods.items()) + "."]
    return {"title": "Test-split means: ours and the published value", "html": Markup(html), "notes": notes}


def _plain(value) -> str:
    return f"{value:.5f}" if isinstance(value, float) and math.isfinite(value) else tables.MISSING


def _signed(value) -> str:
    return f"{value:+.5f}" if isinstance(value, float) and math.isfinite(value) else tables.MISSING
