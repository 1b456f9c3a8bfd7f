"""`python -m sweeper.report SWEEP_DIR`: tables, statistics, plots and one HTML page for a sweep.

Reads SWEEP_DIR/sweep.json (what was declared: variants in table order, seeds, comparisons) and
SWEEP_DIR/results/*.parquet (one row per finished run), and writes SWEEP_DIR/report/:
  table.{md,csv,tex}       the paper-format table (Table 6 layout for layout "num_embeddings", the
                           best configurations for a search), plus table_domains.* for Table 6;
  summary.csv, stats.csv   per-cell means, and every declared comparison (see sweeper.stats);
  *.png + *.csv            sensitivity curves / ablation bars and the numbers behind them;
  published.csv            ours next to the paper's numbers (when the sweep declares counterparts);
  best_configs.csv, importances.csv   for search studies;
  missing_seeds.csv        declared (variant, seed) pairs without an ok result, with the last error;
  report.html              everything above on one self-contained page (images inline).
The sweep service calls write_report(sweep_dir) when a sweep ends.
"""
from __future__ import annotations

import argparse
import base64
import html
import importlib.resources
import json
import os
import sys
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from sweeper import plots, tables
from sweeper.stats import ComparisonSpec, latest_ok_runs, stats_frame, summary_frame
from sweeper.tables import Table, VariantSpec
from sweeper.tuned import choices_frame

LAYOUTS = ("rows", "alpha", "num_embeddings", "search")
STUDIES = ("replicate", "search", "tuned")
WANDB_MODES = ("disabled", "offline", "online")
# Columns of the results store that describe a configuration (seed is the replicate, not a factor).
FACTOR_COLUMNS = ("architecture", "embedding", "num_embeddings", "embedding_dim", "expert_hidden", "tower_hidden", "gating",
                  "aux_loss", "alpha", "aux_rows", "lr", "batch_size", "epochs", "patience", "embedding_l2")
TUNING_TITLE = ("Tuning: each tuned row's configurations on the tuning seeds (validation split), the chosen one "
                "replicated on the table's seeds")
PROVENANCE_COLUMNS = ("git_commit", "host", "device", "torch_version", "ray_version", "optuna_version")
PROTOCOL = (
    "Each declared comparison (variant vs reference) is tested per metric and domain on the test split. "
    "Test: paired t-test over seeds when both arms finished exactly the same seeds (a seed fixes data order "
    "and shared initialisation), otherwise Welch's t-test; the test used is named per row of stats.csv. "
    "Delta = mean difference with a 95 % t interval. p-values are Holm-adjusted over all comparisons of the "
    "table (variants x metrics x domains); * = adjusted p < 0.05 and an improvement over the reference "
    "(higher AUC/gAUC, lower logloss). An exact permutation p-value is reported as a robustness check only. "
    "Effect size is Hedges' g (pooled between-seed SD); mde is the smallest difference the cell had 80 % "
    "power to detect (two-sided, alpha 0.05), so a missing star is not evidence of no effect when mde is "
    "large. Means are over finished seeds; a cell with fewer than the declared seeds shows (k/n)."
)


# ---------------------------------------------------------------- what the sweep declared


@dataclass(frozen=True)
class SweepSpec:
    """SWEEP_DIR/sweep.json, validated."""

    name: str
    study: str
    table: str
    layout: str
    data: str
    dataset: str | None
    domains: tuple[str, ...]
    metrics: tuple[str, ...]
    seeds: tuple[int, ...]
    variants: tuple[VariantSpec, ...]
    comparisons: tuple[ComparisonSpec, ...]
    published_method: Mapping[str, str] = field(default_factory=dict)
    optuna_storage: str | None = None
    optuna_study: str | None = None
    direction: str = "maximize"
    objective: str = "val_auc_overall"
    search_params: tuple[str, ...] = ()  # the parameters a search varies (shown with its best configurations)


def load_spec(sweep_dir: Path) -> SweepSpec:
    path = Path(sweep_dir) / "sweep.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist; expected the sweep file the sweep service writes")
    return spec_from_dict(json.loads(path.read_text()))


def spec_from_dict(raw: Mapping) -> SweepSpec:
    """Parse and check a sweep file; ValueError names the offending key and what was expected."""
    for key in ("name", "study", "table", "layout", "data", "seeds"):
        if key not in raw:
            raise ValueError(f"sweep.json lacks key {key!r}")
    if raw["study"] not in STUDIES:
        raise ValueError(f"sweep.json study={raw['study']!r}; expected one of {STUDIES}")
    if raw["layout"] not in LAYOUTS:
        raise ValueError(f"sweep.json layout={raw['layout']!r}; expected one of {LAYOUTS}")
    if raw.get("direction", "maximize") not in ("maximize", "minimize"):
        raise ValueError(f"sweep.json direction={raw['direction']!r}; expected 'maximize' or 'minimize'")
    variants = tuple(VariantSpec(name=str(v["name"]), factors=dict(v.get("factors") or {}),
                                 series=v.get("series"), x=v.get("x")) for v in raw.get("variants") or [])
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError(f"sweep.json variants has duplicate names: {sorted({n for n in names if names.count(n) > 1})}")
    comparisons = tuple(ComparisonSpec(variant=str(c["variant"]), reference=str(c["reference"]))
                        for c in raw.get("comparisons") or [])
    for comparison in comparisons:
        for role in ("variant", "reference"):
            if variants and getattr(comparison, role) not in names:
                raise ValueError(f"sweep.json comparisons: {role} {getattr(comparison, role)!r} is not a "
                                 f"declared variant; variants: {names}")
    if raw["layout"] in ("alpha", "num_embeddings"):
        unplaced = [v.name for v in variants if v.x is None]
        if unplaced:
            raise ValueError(f"sweep.json layout={raw['layout']!r} needs x on every variant; missing on {unplaced}")
    if raw["layout"] == "num_embeddings":
        unnamed = [v.name for v in variants if v.series is None]
        if unnamed:
            raise ValueError(f"sweep.json layout='num_embeddings' needs series on every variant; missing on {unnamed}")
    # Null/absent domains (real datasets) are read off the results' metric columns in analyse().
    domains = tuple(raw.get("domains") or ())
    # Every table has an overall column; the store always has {split}_{metric}_overall.
    domains = domains if not domains or "overall" in domains else (*domains, "overall")
    return SweepSpec(
        name=str(raw["name"]), study=raw["study"], table=str(raw["table"]), layout=raw["layout"],
        data=str(raw["data"]), dataset=raw.get("dataset"), domains=domains,
        metrics=tuple(raw.get("metrics") or ("auc", "gauc")), seeds=tuple(int(s) for s in raw["seeds"]),
        variants=variants, comparisons=comparisons, published_method=dict(raw.get("published_method") or {}),
        optuna_storage=raw.get("optuna_storage"), optuna_study=raw.get("optuna_study"),
        direction=raw.get("direction", "maximize"), objective=raw.get("objective", "val_auc_overall"),
        search_params=tuple(raw.get("search_params") or ()))


def load_results(sweep_dir: Path) -> pd.DataFrame:
    """All rows of SWEEP_DIR/results/*.parquet (empty frame if none yet).

    File by file rather than pd.read_parquet(directory): a file holding only failed rows has all-null
    metric columns, whose Arrow type then clashes with the other files' in a dataset scan.
    """
    # Dot-files are writes in flight (the store writes .tmp-NAME, then renames it).
    files = sorted(f for f in (Path(sweep_dir) / "results").glob("*.parquet") if not f.name.startswith("."))
    frames = [pd.read_parquet(f) for f in files]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({"variant": pd.Series(dtype=str), "seed": pd.Series(dtype=int),
                             "status": pd.Series(dtype=str), "finished_at": pd.Series(dtype=float),
                             "error": pd.Series(dtype=str)})
    return pd.concat(frames, ignore_index=True)


def load_published() -> pd.DataFrame:
    """The paper's numbers shipped with the package (dataset, table, method, metric, domain, value)."""
    with importlib.resources.files("sweeper").joinpath("data/published_results.csv").open() as handle:
        return pd.read_csv(handle)


# ---------------------------------------------------------------- analysis (no I/O)


@dataclass(frozen=True)
class Analysis:
    spec: SweepSpec
    variants: tuple[VariantSpec, ...]  # the declared ones; for a search, those found in the results
    runs: pd.DataFrame  # latest ok row per (variant, seed)
    summary: pd.DataFrame
    stats: pd.DataFrame
    table: Table
    domain_table: Table | None  # per-domain view where the paper layout shows only overall
    missing: pd.DataFrame
    published: pd.DataFrame | None
    best: pd.DataFrame | None
    notes: tuple[str, ...]
    tuning: pd.DataFrame | None = None  # tuned study: every row's configurations and the chosen one


def analyse(spec: SweepSpec, results: pd.DataFrame, published: pd.DataFrame, top_k: int = 10) -> Analysis:
    """Everything the report shows, computed from the sweep file, the results store and the paper's numbers."""
    notes = []
    if not spec.domains:
        spec = replace(spec, domains=domains_in(results, spec.metrics))
    runs = latest_ok_runs(results, seeds=spec.seeds)
    undeclared = results[~results["seed"].isin(list(spec.seeds))]
    if len(undeclared):
        notes.append(f"{len(undeclared)} result row(s) of undeclared seeds {sorted(set(undeclared['seed']))} "
                     f"were left out: n counts against the declared seeds {list(spec.seeds)}.")
    variants = spec.variants or _variants_in(results)
    names = [v.name for v in variants]
    expected_n = len(spec.seeds)
    summary = summary_frame(runs, names, spec.metrics, spec.domains)
    stats = stats_frame(runs, spec.comparisons, spec.metrics, spec.domains, table=spec.table, expected_n=expected_n)
    title = f"{spec.table}: {spec.name} ({spec.data}, test split)"
    domain_table = None
    best = None
    if spec.layout == "search":
        factors = tuple(dict.fromkeys((*spec.search_params, *FACTOR_COLUMNS)))
        best = tables.rank_configurations(runs, spec.objective, spec.direction, top_k, factors, spec.metrics)
        table = tables.frame_table(best, f"{spec.name}: top {top_k} configurations by mean {spec.objective} "
                                         f"({spec.direction})", notes=(
            "Ranked on the validation objective; test columns are shown, never used for ranking.",))
    else:
        rows = tables.rows_table(summary, stats, names, spec.comparisons, spec.metrics, spec.domains,
                                 expected_n, title, no_overall=without_overall(runs))
        if spec.layout == "num_embeddings":
            table = tables.num_embeddings_table(summary, stats, variants, spec.comparisons, spec.metrics,
                                                expected_n, title)
            domain_table = rows
        else:
            table = rows
    side_by_side = None
    if spec.published_method:
        side_by_side = tables.published_comparison(summary, published, spec.dataset, spec.table,
                                                   spec.published_method, names, spec.metrics, spec.domains)
        if side_by_side.empty:
            notes.append(f"No published numbers for table {spec.table!r} and the declared methods "
                         f"{sorted(set(spec.published_method.values()))}.")
    # A search runs each trial on its own few seeds: only attempted-and-failed seeds count as missing.
    missing = missing_seeds(results, names, spec.seeds, attempted_only=spec.study == "search")
    return Analysis(spec, tuple(variants), runs, summary, stats, table, domain_table, missing, side_by_side,
                    best, tuple(notes))


def without_overall(runs: pd.DataFrame) -> set[str]:
    """Variants that ran an architecture without a meaningful overall metric (single_domain)."""
    from model.architectures import ARCHITECTURES

    if "architecture" not in runs.columns:
        return set()
    flat = {name for name, arch in ARCHITECTURES.items() if not arch.overall}
    return set(runs.loc[runs["architecture"].isin(flat), "variant"])


def domains_in(results: pd.DataFrame, metrics: Sequence[str]) -> tuple[str, ...]:
    """Domain names from the test metric columns (test_{metric}_{domain}), overall last."""
    prefix = f"test_{metrics[0]}_" if metrics else "test_auc_"
    found = [c[len(prefix):] for c in results.columns if c.startswith(prefix)]
    return (*[d for d in found if d != "overall"], "overall")


def _variants_in(results: pd.DataFrame) -> list[VariantSpec]:
    """A search declares no variants up front: take them from the results in the order they finished."""
    ordered = results.sort_values("finished_at", kind="stable")
    factors = [c for c in FACTOR_COLUMNS if c in ordered.columns]
    first = ordered.drop_duplicates("variant")
    return [VariantSpec(name=str(row["variant"]), factors={c: row[c] for c in factors}) for _, row in first.iterrows()]


def missing_seeds(results: pd.DataFrame, variants: Sequence[str], seeds: Sequence[int],
                  attempted_only: bool = False) -> pd.DataFrame:
    """Declared (variant, seed) pairs with no ok row, with the last error if a run failed.

    attempted_only: list only pairs with a failed row (a search does not run every seed of a trial).
    """
    ok = set(zip(results.loc[results["status"] == "ok", "variant"], results.loc[results["status"] == "ok", "seed"]))
    failed = results[results["status"] != "ok"].sort_values("finished_at", kind="stable")
    last_error = {(r.variant, r.seed): str(getattr(r, "error", "")) for r in failed.itertuples(index=False)}
    rows = [{"variant": v, "seed": s, "status": "failed" if (v, s) in last_error else "no result",
             "error": last_error.get((v, s), "")}
            for v in variants for s in seeds
            if (v, s) not in ok and (not attempted_only or (v, s) in last_error)]
    return pd.DataFrame(rows, columns=["variant", "seed", "status", "error"])


# ---------------------------------------------------------------- Optuna


@dataclass(frozen=True)
class Importances:
    frame: pd.DataFrame | None  # parameter, importance; None when they could not be computed
    note: str


def optuna_importances(storage_path: Path | None, study_name: str | None) -> Importances:
    """Parameter importances from the sweep's Optuna journal; failures become a note, never an error."""
    if storage_path is None:
        return Importances(None, "No Optuna storage declared in sweep.json (optuna_storage is null).")
    if not storage_path.is_file():
        # Checked first: JournalFileBackend would create an empty journal at a wrong path.
        return Importances(None, f"Optuna journal {storage_path} does not exist; no importances.")
    try:
        import optuna

        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage_path)))
        study = optuna.load_study(study_name=study_name, storage=storage)
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if len(completed) < 2:
            return Importances(None, f"Only {len(completed)} completed Optuna trial(s); importances need at least 2.")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
                values = optuna.importance.get_param_importances(study, evaluator=evaluator)
                method = "fANOVA (seed 0)"
            except ImportError:  # fANOVA needs scikit-learn, which the project does not depend on
                values = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
                method = "PED-ANOVA (scikit-learn not installed, so not fANOVA)"
        if not values:
            return Importances(None, "Optuna returned no importances (no parameter varied across trials).")
        frame = pd.DataFrame({"parameter": list(values), "importance": list(values.values())})
        warned = " ".join(str(w.message) for w in caught)
        return Importances(frame, f"Importances by {method} over {len(completed)} completed trials of study "
                                  f"{study.study_name!r}." + (f" Optuna warned: {warned}" if warned else ""))
    except Exception as error:  # a report must not die on a damaged or incompatible journal
        return Importances(None, f"Importances unavailable: {type(error).__name__}: {error}")


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class Plot:
    title: str
    png: Path
    csv: Path


def write_tables(table: Table, out_dir: Path, stem: str) -> None:
    (out_dir / f"{stem}.md").write_text(tables.to_markdown(table))
    (out_dir / f"{stem}.csv").write_text(tables.to_csv(table))
    (out_dir / f"{stem}.tex").write_text(tables.to_latex(table))


def write_plots(analysis: Analysis, importances: Importances, out_dir: Path) -> list[Plot]:
    spec = analysis.spec
    made = []
    if spec.layout == "alpha":
        curve = plots.curve_frame(analysis.summary, analysis.variants)
        made.append(Plot("Metric vs alpha", plots.plot_alpha(curve, spec.metrics, out_dir / "alpha.png", spec.name),
                         out_dir / "alpha.csv"))
        curve.to_csv(made[-1].csv, index=False)
    if spec.layout == "num_embeddings":
        curve = plots.curve_frame(analysis.summary, analysis.variants)
        made.append(Plot("Metric vs number of embedding sets",
                         plots.plot_num_embeddings(curve, spec.metrics, out_dir / "num_embeddings.png", spec.name),
                         out_dir / "num_embeddings.csv"))
        curve.to_csv(made[-1].csv, index=False)
    if spec.layout == "rows" and len(analysis.stats):
        deltas = plots.delta_frame(tables.row_reference_stats(analysis.stats, spec.comparisons))
        made.append(Plot("Per-domain difference vs reference",
                         plots.plot_deltas(deltas, spec.metrics, spec.domains, out_dir / "deltas.png", spec.name),
                         out_dir / "deltas.csv"))
        deltas.to_csv(made[-1].csv, index=False)
    if importances.frame is not None:
        made.append(Plot("Optuna parameter importances",
                         plots.plot_importances(importances.frame, out_dir / "importances.png", spec.name),
                         out_dir / "importances.csv"))
        importances.frame.to_csv(made[-1].csv, index=False)
    return made


def write_report(sweep_dir: Path | str, wandb_mode: str | None = None, top_k: int = 10) -> Path:
    """Write SWEEP_DIR/report/ (see the module docstring) and return that directory.

    Finds everything from sweep_dir: sweep.json, results/*.parquet, and the Optuna journal at
    sweep.json's optuna_storage (a relative path is taken relative to sweep_dir).
    wandb_mode: "online"/"offline" log a summary W&B run; None, "disabled" or "off" do not.
    """
    wandb_mode = "disabled" if wandb_mode in (None, "off") else wandb_mode
    if wandb_mode not in WANDB_MODES:
        raise ValueError(f"wandb_mode={wandb_mode!r}; expected one of {WANDB_MODES}, 'off' or None")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    sweep_dir = Path(sweep_dir)
    analysis = analyse(load_spec(sweep_dir), load_results(sweep_dir), load_published(), top_k)
    analysis = replace(analysis, tuning=choices_frame(sweep_dir))
    spec = analysis.spec  # with domains filled in from the results where sweep.json has none
    out_dir = sweep_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)

    write_tables(analysis.table, out_dir, "table")
    if analysis.domain_table is not None:
        write_tables(analysis.domain_table, out_dir, "table_domains")
    analysis.summary.to_csv(out_dir / "summary.csv", index=False)
    analysis.stats.to_csv(out_dir / "stats.csv", index=False)
    analysis.missing.to_csv(out_dir / "missing_seeds.csv", index=False)
    if analysis.published is not None:
        analysis.published.to_csv(out_dir / "published.csv", index=False)
    if analysis.best is not None:
        analysis.best.to_csv(out_dir / "best_configs.csv", index=False)
    if analysis.tuning is not None:
        write_tables(tables.frame_table(analysis.tuning, TUNING_TITLE), out_dir, "tuning")

    importances = Importances(None, "")
    if spec.study == "search" or spec.optuna_storage:
        storage = Path(spec.optuna_storage) if spec.optuna_storage else None
        if storage is not None and not storage.is_absolute():
            storage = sweep_dir / storage
        importances = optuna_importances(storage, spec.optuna_study)
    made = write_plots(analysis, importances, out_dir)

    wandb_note = "W&B logging off." if wandb_mode == "disabled" else log_to_wandb(
        wandb_mode, analysis, importances, made, sweep_dir)
    (out_dir / "report.html").write_text(render_html(analysis, importances, made, wandb_note))
    return out_dir


# ---------------------------------------------------------------- W&B


def log_to_wandb(mode: str, analysis: Analysis, importances: Importances, made: Sequence[Plot],
                 sweep_dir: Path) -> str:
    """One summary run: every table as wandb.Table, every plot as wandb.Image. Never raises.

    Credentials come from the user's own W&B login/environment; nothing is written here.
    """
    previous_mode = os.environ.get("WANDB_MODE")
    try:
        import wandb

        if mode == "offline":
            os.environ["WANDB_MODE"] = "offline"
        spec = analysis.spec
        run = wandb.init(project="crocodile-sweeps", name=f"{spec.name}-report", job_type="report", mode=mode,
                         dir=str(sweep_dir), config={"sweep": spec.name, "study": spec.study, "table": spec.table,
                                                     "data": spec.data, "seeds": list(spec.seeds)})
        try:
            logged = {"table": wandb.Table(columns=list(analysis.table.columns),
                                           data=[list(r) for r in analysis.table.rows]),
                      "stats": wandb.Table(dataframe=analysis.stats),
                      "summary": wandb.Table(dataframe=analysis.summary)}
            if analysis.published is not None:
                logged["published"] = wandb.Table(dataframe=analysis.published)
            if importances.frame is not None:
                logged["importances"] = wandb.Table(dataframe=importances.frame)
            for plot in made:
                logged[plot.png.stem] = wandb.Image(str(plot.png), caption=plot.title)
            run.log(logged)
        finally:
            run.finish()
        return f"Logged a summary run to W&B ({mode}): {run.name}."
    except Exception as error:  # W&B is a convenience: its failure must never cost the report
        print(f"warning: W&B logging failed: {type(error).__name__}: {error}", file=sys.stderr)
        return f"W&B logging ({mode}) failed: {type(error).__name__}: {error}"
    finally:
        if previous_mode is None:
            os.environ.pop("WANDB_MODE", None)
        else:
            os.environ["WANDB_MODE"] = previous_mode


# ---------------------------------------------------------------- HTML

_CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0;font-size:.85em}th,td{border:1px solid #ccc;padding:3px 6px;
text-align:right}th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}.note{font-size:.85em;
color:#555;margin:.2em 0}img{max-width:100%}figure{margin:1em 0}.meta td{text-align:left}"""


def render_html(analysis: Analysis, importances: Importances, made: Sequence[Plot], wandb_note: str) -> str:
    spec = analysis.spec
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(spec.name)} report</title>"
             f"<style>{_CSS}</style></head><body><h1>Sweep report: {html.escape(spec.name)}</h1>",
             _meta_table(analysis), "<h2>Significance protocol</h2>", f"<p>{html.escape(PROTOCOL)}</p>",
             "<h2>Table</h2>", tables.to_html(analysis.table)]
    if analysis.domain_table is not None:
        parts += ["<h2>Per-domain table</h2>", tables.to_html(analysis.domain_table)]
    if analysis.tuning is not None:
        parts += ["<h2>Tuning</h2>", _frame_html(analysis.tuning, TUNING_TITLE)]
    parts.append("<h2>Missing or failed seeds</h2>")
    parts.append(_frame_html(analysis.missing, "Declared (variant, seed) pairs without an ok result")
                 if len(analysis.missing) else "<p>None: every declared seed of every variant finished.</p>")
    if made:
        parts.append("<h2>Plots</h2>")
        for plot in made:
            encoded = base64.b64encode(plot.png.read_bytes()).decode("ascii")
            parts.append(f"<figure><img alt='{html.escape(plot.title)}' src='data:image/png;base64,{encoded}'>"
                         f"<figcaption>{html.escape(plot.title)} (numbers: {html.escape(plot.csv.name)})"
                         f"</figcaption></figure>")
    parts.append("<h2>Published numbers</h2>")
    if analysis.published is None:
        parts.append("<p>sweep.json declares no published counterparts (published_method is empty).</p>")
    else:
        parts.append(_frame_html(analysis.published, f"Ours (test-split mean) vs the paper, {spec.table}"))
    if spec.study == "search" or importances.note:
        parts.append("<h2>Optuna parameter importances</h2>")
        if importances.frame is not None:
            parts.append(_frame_html(importances.frame, "Parameter importances"))
        parts.append(f"<p class='note'>{html.escape(importances.note)}</p>")
    parts += ["<h2>All comparisons (stats.csv)</h2>",
              _frame_html(analysis.stats, "One row per comparison x metric x domain") if len(analysis.stats)
              else "<p>No comparisons declared in sweep.json.</p>"]
    notes = (*analysis.notes, wandb_note)
    parts += ["<h2>Notes</h2>"] + [f"<p class='note'>{html.escape(n)}</p>" for n in notes if n]
    parts.append("</body></html>")
    return "\n".join(parts)


def _meta_table(analysis: Analysis) -> str:
    spec, runs = analysis.spec, analysis.runs
    items = [("study", spec.study), ("table", spec.table), ("layout", spec.layout), ("data", spec.data),
             ("dataset", spec.dataset or "synthetic"), ("seeds", ", ".join(map(str, spec.seeds))),
             ("variants", str(len(analysis.variants))), ("finished (variant, seed) pairs", str(len(runs))),
             ("missing (variant, seed) pairs", str(len(analysis.missing)))]
    for column in PROVENANCE_COLUMNS:
        if column in runs.columns:
            items.append((column, ", ".join(sorted({str(v) for v in runs[column].dropna()}))))
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in items)
    return f"<table class='meta'>{rows}</table>"


def _frame_html(frame: pd.DataFrame, title: str) -> str:
    return tables.to_html(tables.frame_table(frame, title))


# ---------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeper.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="directory with sweep.json and results/")
    parser.add_argument("--wandb", choices=(*WANDB_MODES, "off"), default="disabled",
                        help="log a summary W&B run (default: disabled; 'off' is the same)")
    parser.add_argument("--top-k", type=int, default=10, help="best configurations listed for a search")
    args = parser.parse_args(argv)
    try:
        out_dir = write_report(args.sweep_dir, wandb_mode=args.wandb, top_k=args.top_k)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report written to {out_dir / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
