"""Sensitivity and ablation plots (PNG) and the tables behind them.

Figures are built with matplotlib.figure.Figure directly, not pyplot: no global figure state and no
display backend, so reports render the same on a headless node as on a laptop (Agg canvas).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sweeper.tables import VariantSpec, domain_label, metric_label

CURVE_COLUMNS = ("series", "x", "variant", "metric", "domain", "n", "mean", "std", "ci_low", "ci_high")
DPI = 110


def curve_frame(summary: pd.DataFrame, variants: Sequence[VariantSpec]) -> pd.DataFrame:
    """The summary rows of variants placed on a curve (series, x); variants without x are left out."""
    placed = pd.DataFrame([(v.name, v.series or "all", float(v.x)) for v in variants if v.x is not None],
                          columns=["variant", "series", "x"])
    # Series keep the sweep file's order (legend order = table order), not the alphabet's.
    order = {name: index for index, name in enumerate(dict.fromkeys(placed["series"]))}
    frame = summary.merge(placed, on="variant", how="inner")
    frame = frame.assign(order=frame["series"].map(order)).sort_values(["metric", "domain", "order", "x"],
                                                                       kind="stable", ignore_index=True)
    return frame[list(CURVE_COLUMNS)]


def _axes_per_metric(metrics: Sequence[str]):
    figure = Figure(figsize=(5.0 * len(metrics), 4.2), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    return figure, axes


def _legend_below(figure: Figure, axes) -> None:
    """One legend for all panels, outside the data (below the axes), entries deduplicated."""
    handles, labels = {}, []
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in handles:
                handles[label] = handle
                labels.append(label)
    if labels:
        figure.legend([handles[label] for label in labels], labels, loc="outside lower center",
                      ncol=min(len(labels), 3), fontsize="small", frameon=False)


def plot_alpha(curve: pd.DataFrame, metrics: Sequence[str], path: Path, title: str,
               domain: str = "overall") -> Path:
    """Metric vs alpha on a log axis, mean and 95 % CI band per series.

    alpha = 0 has no place on a log axis, so it is drawn as a dashed horizontal line with its band.
    """
    figure, axes = _axes_per_metric(metrics)
    for ax, metric in zip(axes, metrics):
        cells = curve[(curve["metric"] == metric) & (curve["domain"] == domain) & curve["mean"].notna()]
        for index, (series, points) in enumerate(cells.groupby("series", sort=False)):
            color = f"C{index}"
            positive, zero = points[points["x"] > 0], points[points["x"] <= 0]
            ax.plot(positive["x"], positive["mean"], "o-", color=color, label=series)
            ax.fill_between(positive["x"], positive["ci_low"], positive["ci_high"], color=color, alpha=0.2)
            for _, row in zero.iterrows():
                ax.axhline(row["mean"], color=color, linestyle="--", label=f"{series}, alpha = 0")
                if math.isfinite(row["ci_low"]):
                    ax.axhspan(row["ci_low"], row["ci_high"], color=color, alpha=0.1)
        ax.set_xscale("log")
        ax.set_xlabel("alpha (weight of the auxiliary loss, log scale)")
        ax.set_ylabel(f"test {metric_label(metric)} ({domain_label(domain)})")
        ax.grid(True, alpha=0.3)
    _legend_below(figure, axes)
    figure.suptitle(f"{title}: mean over seeds, 95 % CI")
    figure.savefig(path, dpi=DPI)
    return path


def plot_num_embeddings(curve: pd.DataFrame, metrics: Sequence[str], path: Path, title: str,
                        domain: str = "overall") -> Path:
    """Metric vs number of embedding sets M, one line per model (series) with its 95 % CI band."""
    figure, axes = _axes_per_metric(metrics)
    for ax, metric in zip(axes, metrics):
        cells = curve[(curve["metric"] == metric) & (curve["domain"] == domain) & curve["mean"].notna()]
        for index, (series, points) in enumerate(cells.groupby("series", sort=False)):
            ax.plot(points["x"], points["mean"], "o-", color=f"C{index}", label=series)
            ax.fill_between(points["x"], points["ci_low"], points["ci_high"], color=f"C{index}", alpha=0.2)
        ax.set_xlabel("number of embedding sets M")
        ax.set_ylabel(f"test {metric_label(metric)} ({domain_label(domain)})")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
    _legend_below(figure, axes)
    figure.suptitle(f"{title}: mean over seeds, 95 % CI")
    figure.savefig(path, dpi=DPI)
    return path


def delta_frame(stats: pd.DataFrame) -> pd.DataFrame:
    """The stats columns the ablation bars show."""
    return stats[["variant", "reference", "metric", "domain", "n", "ref_n", "delta", "ci_low", "ci_high",
                  "test", "p_adjusted", "significant"]].reset_index(drop=True)


# A domain whose CI is this many times wider than the overall's does not set the y-scale: tail
# domains rest on a handful of users, and their whiskers would flatten every other bar.
TAIL_CI_RATIO = 4.0


def scale_domains(deltas: pd.DataFrame, metric: str, domains: Sequence[str]) -> list[str]:
    """The domains that set a metric's y-scale: overall, and those with a CI at most TAIL_CI_RATIO
    times the overall's (the large domains). Without an overall CI every domain counts."""
    cells = deltas[deltas["metric"] == metric]
    width = (cells["ci_high"] - cells["ci_low"]).groupby(cells["domain"]).median()
    overall = width.get("overall", math.nan)
    if not math.isfinite(overall) or overall <= 0:
        return list(domains)
    return [d for d in domains if d == "overall" or not math.isfinite(width.get(d, math.nan))
            or width[d] <= TAIL_CI_RATIO * overall]


def plot_deltas(deltas: pd.DataFrame, metrics: Sequence[str], domains: Sequence[str], path: Path,
                title: str) -> Path:
    """Per-domain bars of delta vs the reference with 95 % CI whiskers; `*` over significant bars.

    Differences, not raw means: ablation gaps are ~1e-3 while domains differ by ~1e-1, so bars of
    means would all look equal. Each metric's y-scale is set by the overall and the large domains
    (scale_domains); a tail domain's whisker beyond it is clipped at the edge and marked with a
    triangle, and its domain label says "(clipped)".
    """
    figure, axes = _axes_per_metric(metrics)
    # Points (100 x the difference), as the paper and the table print lifts: ticks of 0.15, not 0.0015.
    deltas = deltas.assign(**{c: 100 * deltas[c] for c in ("delta", "ci_low", "ci_high")})
    variants = list(dict.fromkeys(deltas["variant"]))
    width = 0.8 / max(len(variants), 1)
    positions = np.arange(len(domains))
    for ax, metric in zip(axes, metrics):
        scaled = scale_domains(deltas, metric, domains)
        inside = deltas[(deltas["metric"] == metric) & deltas["domain"].isin(scaled)]
        bounds = pd.concat([inside["ci_low"], inside["ci_high"], inside["delta"], pd.Series([0.0])]).dropna()
        low_lim, high_lim = float(bounds.min()), float(bounds.max())
        pad = 0.15 * (high_lim - low_lim or abs(high_lim) or 0.1)
        low_lim, high_lim = low_lim - pad, high_lim + pad
        clipped_domains = set()
        for index, variant in enumerate(variants):
            cells = deltas[(deltas["variant"] == variant) & (deltas["metric"] == metric)].set_index("domain")
            cells = cells.reindex(list(domains))
            offset = positions - 0.4 + width * (index + 0.5)
            value = cells["delta"].fillna(0).clip(low_lim, high_lim)
            top = cells["ci_high"].fillna(cells["delta"]).clip(upper=high_lim)
            bottom = cells["ci_low"].fillna(cells["delta"]).clip(lower=low_lim)
            low = (value - bottom).clip(lower=0).fillna(0)
            high = (top - value).clip(lower=0).fillna(0)
            reference = deltas.loc[deltas["variant"] == variant, "reference"].iloc[0]
            ax.bar(offset, value, width, yerr=[low, high], capsize=2, color=f"C{index}",
                   label=f"{variant} vs {reference}")
            for x, domain, ci_low, ci_high in zip(offset, domains, cells["ci_low"], cells["ci_high"]):
                if math.isfinite(ci_high) and ci_high > high_lim:
                    ax.plot(x, high_lim, marker="^", color="black", markersize=4, clip_on=False)
                    clipped_domains.add(domain)
                if math.isfinite(ci_low) and ci_low < low_lim:
                    ax.plot(x, low_lim, marker="v", color="black", markersize=4, clip_on=False)
                    clipped_domains.add(domain)
            # eq(True): a domain absent from the stats is NaN after reindex, and bool(NaN) is True.
            for x, significant, peak in zip(offset, cells["significant"].eq(True), top):
                if significant:
                    ax.annotate("*", (x, peak), ha="center", va="bottom")
        ax.set_ylim(low_lim, high_lim)
        ax.axhline(0, color="black", linewidth=0.8)
        untested = {d for d, tests in deltas[deltas["metric"] == metric].groupby("domain")["test"]
                    if tests.astype(str).str.startswith("not testable").all()}
        ax.set_xticks(positions, [domain_label(d) + ("\nclipped" if d in clipped_domains else "")
                                  + ("\nno test" if d in untested else "") for d in domains], fontsize="small")
        ax.set_xlabel("domain")
        ax.set_ylabel(f"test {metric_label(metric)} minus reference (pts)")
        ax.set_title(metric_label(metric))
        ax.grid(True, axis="y", alpha=0.3)
    _legend_below(figure, axes)
    figure.suptitle(f"{title}: mean difference vs reference in points (100 x), 95 % CI\n"
                    f"* verdict better (Holm within its family); \u25b2\u25bc CI beyond the axis, whose scale the "
                    f"overall and large domains set; no test: degenerate cell", fontsize="medium")
    figure.savefig(path, dpi=DPI)
    return path


def plot_importances(importances: pd.DataFrame, path: Path, title: str) -> Path:
    """Horizontal bars of Optuna parameter importances (columns: parameter, importance)."""
    ordered = importances.sort_values("importance", kind="stable")
    figure = Figure(figsize=(5.5, 0.5 + 0.4 * max(len(ordered), 1)), layout="constrained")
    ax = figure.subplots()
    ax.barh(ordered["parameter"], ordered["importance"], color="C0")
    ax.set_xlabel("importance (normalised)")
    ax.set_title(title)
    figure.savefig(path, dpi=DPI)
    return path


# ---------------------------------------------------------------- mechanism (paper Figs. 2, 4, 5)
# Frames from sweeper.mechanism (long, mean over seeds); each plot's CSV is that frame.


def plot_ia_epochs(frame: pd.DataFrame, variants: Sequence[str], domains: Sequence[str], path: Path,
                   title: str) -> Path:
    """Fig. 2a-like: IA of the expert outputs per domain over the epochs, one panel per variant."""
    figure = Figure(figsize=(4.6 * len(variants), 4.0), layout="constrained")
    axes = figure.subplots(1, len(variants), squeeze=False, sharey=True)[0]
    for ax, variant in zip(axes, variants):
        cells = frame[frame["variant"] == variant]
        for index, domain in enumerate(d for d in domains if d != "overall"):
            points = cells[cells["domain"] == domain]
            if len(points):
                ax.plot(points["epoch"], points["mean"], "o-", markersize=3, color=f"C{index}",
                        label=domain_label(domain))
        ax.set_title(variant, fontsize="medium")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("IA of expert outputs (mean over experts)")
    _legend_below(figure, axes)
    figure.suptitle(f"{title}: information abundance of expert outputs per domain, mean over seeds")
    figure.savefig(path, dpi=DPI)
    return path


def plot_ia_frequency(frame: pd.DataFrame, path: Path, title: str) -> Path:
    """Fig. 2b: IA of item-id embeddings by exposure-frequency group, mean and 95 % CI per variant."""
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.subplots()
    variants = list(dict.fromkeys(frame["variant"]))
    width = 0.6 / max(len(variants), 1)
    for index, variant in enumerate(variants):
        cells = frame[frame["variant"] == variant]
        offset = cells["group"] - 0.3 + width * (index + 0.5)  # side by side, so whiskers do not overlap
        low = (cells["mean"] - cells["ci_low"]).fillna(0).clip(lower=0)
        high = (cells["ci_high"] - cells["mean"]).fillna(0).clip(lower=0)
        ax.errorbar(offset, cells["mean"], yerr=[low, high], fmt="o-", markersize=4, capsize=2, color=f"C{index}",
                    label=variant)
    ax.set_xticks(range(1, 6), ["1\n(most exposed)", "2", "3", "4", "5\n(least exposed)"])
    ax.set_xlabel("item exposure-frequency group")
    ax.set_ylabel("IA of item-id embeddings (mean over sets)")
    ax.grid(True, alpha=0.3)
    _legend_below(figure, [ax])
    figure.suptitle(f"{title}: IA by item frequency, mean over seeds, 95 % CI", fontsize="medium")
    figure.savefig(path, dpi=DPI)
    return path


def plot_spectra(frame: pd.DataFrame, path: Path, title: str, table: str) -> Path:
    """Fig. 4: normalised singular-value spectrum of one embedding table, mean curve over seeds per variant."""
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.subplots()
    for index, (variant, cells) in enumerate(frame.groupby("variant", sort=False)):
        ax.plot(cells["x"], cells["mean"], "-", color=f"C{index}", label=variant)
    ax.set_xlabel("singular value index i / n")
    ax.set_ylabel("log(sigma_i / sigma_max)")
    ax.grid(True, alpha=0.3)
    _legend_below(figure, [ax])
    figure.suptitle(f"{title}: spectrum of {table}, mean over seeds (a fast drop = collapse)", fontsize="medium")
    figure.savefig(path, dpi=DPI)
    return path


def plot_di_pairs(frame: pd.DataFrame, path: Path, title: str) -> Path:
    """Fig. 5: each variant's DI per domain pair, pairs sorted from the highest DI down."""
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = figure.subplots()
    for index, (variant, cells) in enumerate(frame.groupby("variant", sort=False)):
        ax.plot(cells["rank"], cells["mean"], "o-", markersize=4, color=f"C{index}", label=variant)
    ax.set_xlabel("domain pair, ranked by its DI (1 = highest; pairs: the CSV)")
    ax.set_ylabel("Diversity Index (mean over seeds)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    _legend_below(figure, [ax])
    figure.suptitle(f"{title}: sorted DI per domain pair", fontsize="medium")
    figure.savefig(path, dpi=DPI)
    return path
