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
    figure = Figure(figsize=(5.0 * len(metrics), 3.8), layout="constrained")
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    return figure, axes


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
        ax.set_xlabel("alpha (weight of the auxiliary loss)")
        ax.set_ylabel(f"test {metric_label(metric)} ({domain_label(domain)})")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
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
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    figure.suptitle(f"{title}: mean over seeds, 95 % CI")
    figure.savefig(path, dpi=DPI)
    return path


def delta_frame(stats: pd.DataFrame) -> pd.DataFrame:
    """The stats columns the ablation bars show."""
    return stats[["variant", "reference", "metric", "domain", "n", "ref_n", "delta", "ci_low", "ci_high",
                  "test", "p_adjusted", "significant"]].reset_index(drop=True)


def plot_deltas(deltas: pd.DataFrame, metrics: Sequence[str], domains: Sequence[str], path: Path,
                title: str) -> Path:
    """Per-domain bars of delta vs the reference with 95 % CI whiskers; `*` over significant bars.

    Differences, not raw means: ablation gaps are ~1e-3 while domains differ by ~1e-1, so bars of
    means would all look equal.
    """
    figure, axes = _axes_per_metric(metrics)
    variants = list(dict.fromkeys(deltas["variant"]))
    width = 0.8 / max(len(variants), 1)
    positions = np.arange(len(domains))
    for ax, metric in zip(axes, metrics):
        for index, variant in enumerate(variants):
            cells = deltas[(deltas["variant"] == variant) & (deltas["metric"] == metric)].set_index("domain")
            cells = cells.reindex(list(domains))
            offset = positions - 0.4 + width * (index + 0.5)
            low = (cells["delta"] - cells["ci_low"]).clip(lower=0).fillna(0)
            high = (cells["ci_high"] - cells["delta"]).clip(lower=0).fillna(0)
            reference = deltas.loc[deltas["variant"] == variant, "reference"].iloc[0]
            ax.bar(offset, cells["delta"].fillna(0), width, yerr=[low, high], capsize=2, color=f"C{index}",
                   label=f"{variant} vs {reference}")
            # eq(True): a domain absent from the stats is NaN after reindex, and bool(NaN) is True.
            for x, significant, top in zip(offset, cells["significant"].eq(True), cells["ci_high"]):
                if significant:
                    ax.annotate("*", (x, top), ha="center", va="bottom")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.margins(y=0.12)  # room for the stars above the whiskers
        ax.set_xticks(positions, [domain_label(d) for d in domains])
        ax.set_ylabel(f"delta test {metric_label(metric)} vs reference")
        ax.grid(True, axis="y", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    figure.suptitle(f"{title}: mean difference, 95 % CI, * = verdict better (Holm within its family)")
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
