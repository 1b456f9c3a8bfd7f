"""Mechanism evidence (paper Figs. 2, 4, 5): the runs' diagnostics, shaped into the four plots' frames.

Inputs follow the diagnostics contract (DIAG_CONTRACT): result rows carry `ia_*` / `di_*` columns and
`diagnostics_path`, the sweep-relative path of a JSON artefact
  {"best_epoch": e, "scalars": {column: value}, "spectra": {name: [log(sigma_i / sigma_max), ...]},
   "epochs": [{"epoch": e, column: value, ...}, ...]}   (epochs: [] unless diagnostics_every > 0).
Every frame is long (one row per variant x point), averaged over seeds, with n = the seeds behind the
point; the report writes each next to its plot. Rows without diagnostics (sweeps from before them,
diagnostics=false) give empty frames, never an error: the report then says what is missing.
"""
from __future__ import annotations

import json
import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from sweeper.stats import mean_interval, sample_std

FREQUENCY_GROUPS = 5  # ia_item_id_freq1..5, 1 = the most exposed items (Fig. 2b)
TOP_VARIANTS = 4  # panels of the IA-over-epochs plot: more would be unreadable
EPOCH_COLUMNS = ("variant", "epoch", "domain", "n", "mean", "std")
FREQUENCY_COLUMNS = ("variant", "group", "n", "mean", "std", "ci_low", "ci_high")
SPECTRUM_COLUMNS = ("variant", "table", "i", "x", "n", "mean", "std")
DI_COLUMNS = ("variant", "pair", "rank", "n", "mean", "std")
TAIL_RULE = ("the tail domain is the one with the fewest train rows where the rows carry train_rows_<domain>; "
             "otherwise the last domain in the data's order (S6 on synthetic and KuaiRand-1K, also their smallest)")

Artefacts = Mapping[tuple[str, int], Mapping]  # (variant, seed) -> the parsed JSON artefact


def has_column(runs: pd.DataFrame, column: str) -> bool:
    return column in runs.columns and bool(pd.to_numeric(runs[column], errors="coerce").notna().any())


def read_artefacts(store, runs: pd.DataFrame) -> tuple[dict[tuple[str, int], dict], list[str]]:
    """({(variant, seed): artefact}, problems) for the runs whose diagnostics_path is set.

    store: a sweeper.store.ResultsStore (read_text of a sweep-relative name). An unreadable or
    malformed artefact is left out and named in problems; the report goes on without it.
    """
    if "diagnostics_path" not in runs.columns:
        return {}, []
    found, problems = {}, []
    for row in runs.itertuples(index=False):
        path = getattr(row, "diagnostics_path")
        if not isinstance(path, str) or not path:
            continue
        text = store.read_text(path)
        if text is None:
            problems.append(f"{path} (not found)")
            continue
        try:
            artefact = json.loads(text)
        except ValueError as error:
            problems.append(f"{path} (not JSON: {error})")
            continue
        if not isinstance(artefact, dict):
            problems.append(f"{path} (expected a JSON object, got {type(artefact).__name__})")
            continue
        found[(str(row.variant), int(row.seed))] = artefact
    return found, problems


def tail_domain(runs: pd.DataFrame, domains: Sequence[str]) -> str | None:
    """The domain of Fig. 4's tail-domain table (TAIL_RULE); None without domains."""
    names = [d for d in domains if d != "overall"]
    if not names:
        return None
    counts = {d: pd.to_numeric(runs[f"train_rows_{d}"], errors="coerce").mean() for d in names
              if f"train_rows_{d}" in runs.columns}
    if len(counts) == len(names) and all(math.isfinite(v) for v in counts.values()):
        return min(names, key=lambda d: counts[d])
    return names[-1]


def _summary(values: np.ndarray) -> dict:
    ci_low, ci_high = mean_interval(values)
    return {"n": len(values), "mean": float(np.mean(values)) if len(values) else math.nan,
            "std": sample_std(values), "ci_low": ci_low, "ci_high": ci_high}


def _seeds_of(runs: pd.DataFrame, variant: str) -> pd.DataFrame:
    return runs[runs["variant"] == variant]


# ---------------------------------------------------------------- Fig. 2a: IA of expert outputs over epochs


def ia_epochs_frame(artefacts: Artefacts, variants: Sequence[str], domains: Sequence[str]) -> pd.DataFrame:
    """Per variant, epoch and domain: ia_expert_{domain} from the artefacts' per-epoch entries."""
    rows = []
    for variant in variants:
        points: dict[tuple[int, str], list[float]] = {}
        for (name, _), artefact in artefacts.items():
            if name != variant:
                continue
            for entry in artefact.get("epochs") or []:
                for domain in domains:
                    value = entry.get(f"ia_expert_{domain}")
                    if isinstance(value, (int, float)) and math.isfinite(value) and "epoch" in entry:
                        points.setdefault((int(entry["epoch"]), domain), []).append(float(value))
        for (epoch, domain), values in sorted(points.items(), key=lambda kv: (kv[0][0], list(domains).index(kv[0][1]))):
            summary = _summary(np.asarray(values))
            rows.append({"variant": variant, "epoch": epoch, "domain": domain, "n": summary["n"],
                         "mean": summary["mean"], "std": summary["std"]})
    return pd.DataFrame(rows, columns=list(EPOCH_COLUMNS))


def top_variants(frame: pd.DataFrame, runs: pd.DataFrame, variants: Sequence[str], k: int = TOP_VARIANTS) -> list[str]:
    """The k variants of `frame` with the highest mean test_auc_overall (table order if unknown), in table order."""
    present = [v for v in variants if v in set(frame["variant"])]
    if len(present) <= k:
        return present
    score = {v: pd.to_numeric(_seeds_of(runs, v).get("test_auc_overall", pd.Series(dtype=float)),
                              errors="coerce").mean() for v in present}
    ranked = sorted(present, key=lambda v: -score[v] if math.isfinite(score[v]) else math.inf)
    chosen = set(ranked[:k])
    return [v for v in present if v in chosen]


# ---------------------------------------------------------------- Fig. 2b: IA by item-frequency group


def ia_frequency_frame(runs: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """Per variant and frequency group g (1 = most exposed): mean, SD and 95 % CI of ia_item_id_freq{g} over seeds."""
    rows = []
    for variant in variants:
        seeds = _seeds_of(runs, variant)
        for group in range(1, FREQUENCY_GROUPS + 1):
            column = f"ia_item_id_freq{group}"
            if column not in seeds.columns:
                continue
            values = pd.to_numeric(seeds[column], errors="coerce").dropna().to_numpy(float)
            if len(values):
                rows.append({"variant": variant, "group": group, **_summary(values)})
    return pd.DataFrame(rows, columns=list(FREQUENCY_COLUMNS))


# ---------------------------------------------------------------- Fig. 4: singular-value spectra


def spectra_frame(artefacts: Artefacts, variants: Sequence[str], table: str) -> pd.DataFrame:
    """Per variant, the mean over seeds of the spectrum `table` (e.g. item_id_S6): log(sigma_i / sigma_max)
    at index i = 1..n, x = i / n (n = the curve's length; seeds with a shorter curve count where they reach)."""
    rows = []
    for variant in variants:
        curves = [np.asarray(a["spectra"][table], float) for (name, _), a in artefacts.items()
                  if name == variant and isinstance(a.get("spectra"), dict) and a["spectra"].get(table)]
        if not curves:
            continue
        length = max(len(c) for c in curves)
        for index in range(length):
            values = np.asarray([c[index] for c in curves if index < len(c) and math.isfinite(c[index])])
            if not len(values):
                continue
            rows.append({"variant": variant, "table": table, "i": index + 1, "x": (index + 1) / length,
                         "n": len(values), "mean": float(values.mean()), "std": sample_std(values)})
    return pd.DataFrame(rows, columns=list(SPECTRUM_COLUMNS))


# ---------------------------------------------------------------- Fig. 5: DI per domain pair, sorted


def di_pairs(domains: Sequence[str]) -> list[tuple[str, str]]:
    """Every domain pair a < b in the data's domain order (the di_{a}_{b} columns)."""
    names = [d for d in domains if d != "overall"]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def di_pairs_frame(runs: pd.DataFrame, variants: Sequence[str], domains: Sequence[str]) -> pd.DataFrame:
    """Per variant, each pair's DI (mean over seeds), ranked from the highest (rank 1) down; NaN pairs left out."""
    rows = []
    for variant in variants:
        seeds = _seeds_of(runs, variant)
        cells = []
        for a, b in di_pairs(domains):
            column = f"di_{a}_{b}"
            if column not in seeds.columns:
                continue
            values = pd.to_numeric(seeds[column], errors="coerce").dropna().to_numpy(float)
            if len(values):
                cells.append({"variant": variant, "pair": f"{a}-{b}", "n": len(values),
                              "mean": float(values.mean()), "std": sample_std(values)})
        cells.sort(key=lambda c: -c["mean"])
        rows += [{**cell, "rank": rank} for rank, cell in enumerate(cells, start=1)]
    return pd.DataFrame(rows, columns=list(DI_COLUMNS))
