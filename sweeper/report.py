"""`python -m sweeper.report SWEEP_DIR`: tables, statistics, plots and one HTML page for a sweep.

Reads SWEEP_DIR/sweep.json (what was declared: variants in table order, seeds, comparisons) and
SWEEP_DIR/results/*.parquet (one row per finished run), and writes SWEEP_DIR/report/:
  table.{md,csv,tex}       the paper-format table (Table 6 layout for layout "num_embeddings", the
                           best configurations for a search), plus table_domains.* for Table 6;
  summary.csv, stats.csv   per-cell means, and every declared comparison (see sweeper.stats);
  *.png + *.csv            sensitivity curves / ablation bars and the numbers behind them;
  published.csv            ours next to the paper's numbers (when the sweep declares counterparts);
  best_configs.csv, importances.csv, optuna_*.png   for search studies (Optuna's own plots too);
  missing_seeds.csv        declared (variant, seed) pairs without an ok result, with the last error;
  verdicts.csv, verdicts.txt   one verdict per primary hypothesis (see sweeper.verdicts);
  paper_claims.csv         the paper's claims on this sweep: reproduced / not reproduced / not testable
                           here, with the test and the numbers (see sweeper.paper_claims);
  ia_epochs, ia_frequency, spectrum_item_id_<tail>, di_pairs (.png + .csv)   the mechanism plots
                           (Figs. 2a, 2b, 4, 5) from the runs' diagnostics (see sweeper.mechanism);
  report.html, report.md   the verdicts first, then everything above (images inline in the HTML;
                           layout in sweeper.report_html and templates/report.html.j2).
The sweep service calls write_report(sweep_dir) when a sweep ends.
"""
from __future__ import annotations

import argparse
import importlib.resources
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from sweeper import hypotheses as hyp
from sweeper import mechanism, optuna_report, paper_claims, plots, protocol, report_html, tables, verdicts, wandb_log
from sweeper.optuna_report import Importances, optuna_importances
from sweeper.stats import SEED_TESTS, ComparisonSpec, latest_ok_runs, summary_frame
from sweeper.store import ResultsStore
from sweeper.store import load_results as store_results
from sweeper.tables import Table, VariantSpec
from sweeper.tuned import choices_frame

LAYOUTS = ("rows", "alpha", "num_embeddings", "search")
STUDIES = ("replicate", "search", "tuned")
# Columns of the results store that describe a configuration (seed is the replicate, not a factor).
FACTOR_COLUMNS = ("architecture", "embedding", "num_embeddings", "embedding_dim", "expert_hidden", "tower_hidden", "gating",
                  "aux_loss", "alpha", "aux_rows", "lr", "batch_size", "epochs", "patience", "embedding_l2")
TUNING_TITLE = ("Tuning: each tuned row's configurations on the tuning seeds (validation split), the chosen one "
                "replicated on the table's seeds")
PROVENANCE_COLUMNS = ("git_commit", "host", "device", "torch_version", "ray_version", "optuna_version")
PROTOCOL = (
    "Families, fixed by the space file before any result: primary = the declared hypotheses (one member per "
    "metric; an intersection-union hypothesis is one member); ablation = every other declared comparison on the "
    "overall domain; secondary = per-domain cells, tested only for a variant whose primary hypotheses all came "
    "out better, otherwise shown with a CI only. Holm within each family (stats.csv: family, family_size, "
    "p_adjusted). Test: paired t on the seeds both arms finished (dropped seeds are named), or Welch when the "
    "space sets seed_test: welch; two-sided at 0.05 plus a direction check (better: an improvement, higher "
    "AUC/gAUC or lower logloss; worse: the other way). Inside an intersection-union hypothesis each pairwise "
    "test is one-sided at 0.05 and all must pass. Degenerate cells (fewer than 2 common seeds, zero variance, a "
    "constant metric or a constant difference) are labelled in the test column and get no p, CI, MDE or star. "
    "Lift (pts) = 100 * (mean - reference mean), as the paper prints it. mde = the smallest difference the cell "
    "had 80 % power to detect at Holm's first step for its family (0.05 / family size, its sidedness). "
    "pair_corr = correlation of the two arms' per-seed scores. The exact permutation p (two-sided) is a "
    "robustness column only; its floor is p_permutation_floor (2/64 = 0.031 at 6 paired seeds). Means are over "
    "finished seeds; a cell with fewer than the declared seeds shows (k/n)."
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
    seeds_per_trial: int = 1  # a search's seeds per trial (for the importances' caveat)
    hypotheses: tuple[hyp.Hypothesis, ...] = ()  # the primary family's claims, references resolved
    seed_test: str = "paired"


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
    metrics = tuple(raw.get("metrics") or ("auc", "gauc"))
    declared = hyp.from_records(raw.get("hypotheses") or [], names, metrics)
    if raw.get("seed_test", "paired") not in SEED_TESTS:
        raise ValueError(f"sweep.json seed_test={raw['seed_test']!r}; expected one of {sorted(SEED_TESTS)}")
    # Null/absent domains (real datasets) are read off the results' metric columns in analyse().
    domains = tuple(raw.get("domains") or ())
    # Every table has an overall column; the store always has {split}_{metric}_overall.
    domains = domains if not domains or "overall" in domains else (*domains, "overall")
    return SweepSpec(
        name=str(raw["name"]), study=raw["study"], table=str(raw["table"]), layout=raw["layout"],
        data=str(raw["data"]), dataset=raw.get("dataset"), domains=domains,
        metrics=metrics, seeds=tuple(int(s) for s in raw["seeds"]),
        variants=variants, comparisons=comparisons, published_method=dict(raw.get("published_method") or {}),
        optuna_storage=raw.get("optuna_storage"), optuna_study=raw.get("optuna_study"),
        direction=raw.get("direction", "maximize"), objective=raw.get("objective", "val_auc_overall"),
        search_params=tuple(raw.get("search_params") or ()), hypotheses=declared,
        seeds_per_trial=int(raw.get("seeds_per_trial") or 1),
        seed_test=raw.get("seed_test", "paired"))


def load_results(sweep_dir: Path) -> pd.DataFrame:
    """The latest attempt of every (cell, seed) under SWEEP_DIR/results/ (empty frame if none yet),
    through the results store's loader: an unreadable file is set aside with a warning, not fatal."""
    frame = store_results(str(sweep_dir))
    if frame.empty:
        return pd.DataFrame({"variant": pd.Series(dtype=str), "seed": pd.Series(dtype=int),
                             "status": pd.Series(dtype=str), "finished_at": pd.Series(dtype=float),
                             "error": pd.Series(dtype=str)})
    return frame


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
    # The answer first (sweeper.verdicts): one row per primary hypothesis, the headline sentences
    # (verdicts, then training quality) and, on synthetic data, each variant's share of the Bayes gap.
    verdicts: pd.DataFrame
    headline: tuple[str, ...]
    bayes: pd.DataFrame | None
    tuning: pd.DataFrame | None = None  # tuned study: every row's configurations and the chosen one
    # The paper's claims (sweeper.paper_claims) and the mechanism plots (Figs. 2, 4, 5) with what is missing.
    claims: pd.DataFrame | None = None
    mechanism_plots: tuple["Plot", ...] = ()
    mechanism_notes: tuple[str, ...] = ()


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
    stats = protocol.stats_frame(runs, spec.comparisons, spec.metrics, spec.domains, table=spec.table,
                                 expected_n=expected_n, declared=spec.hypotheses, seed_test=spec.seed_test)
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
    answer = _verdicts(spec, runs, names, stats, published, best)
    return Analysis(spec, tuple(variants), runs, summary, stats, table, domain_table, missing, side_by_side,
                    best, tuple(notes), *answer)


def _verdicts(spec: SweepSpec, runs: pd.DataFrame, names: Sequence[str], stats: pd.DataFrame,
              published: pd.DataFrame, best: pd.DataFrame | None
              ) -> tuple[pd.DataFrame, tuple[str, ...], pd.DataFrame | None]:
    """(verdicts frame, headline lines, Bayes-gap frame: every variant with an overall metric)."""
    flat = without_overall(runs)  # Single Domain: its "overall" AUC ranks scores of separate models
    gap = verdicts.bayes_gap(runs, [name for name in names if name not in flat])
    shown = _search_leaders(gap, best) if spec.study == "search" else gap
    cells = [cell for h in spec.hypotheses for cell in hyp.cells(h)]
    lifts, source = verdicts.published_lifts(published, spec.dataset, spec.table, spec.published_method, cells)
    frame = verdicts.verdict_frame(stats, spec.hypotheses, lifts, verdicts.training_quality(shown), source)
    return frame, verdicts.headline(frame, shown, spec.study, len(spec.hypotheses)), gap


SEARCH_LEADERS = 3  # configurations of a search the training-quality line speaks of


def _search_leaders(gap: pd.DataFrame | None, best: pd.DataFrame | None) -> pd.DataFrame | None:
    """The search's top configurations (by its objective) in the Bayes-gap frame, named as the ranked
    table names them ("#1 (alpha=0.1, ...)") rather than by trial id."""
    if gap is None or best is None or best.empty:
        return gap
    params = [c for c in best.columns if c not in ("rank", "n", "variant") and not c.endswith((" mean", " std"))]
    labels = {}
    for _, row in best.head(SEARCH_LEADERS).iterrows():
        settings = ", ".join(f"{c}={_plain(row[c])}" for c in params)
        labels[row["variant"]] = f"#{row['rank']} ({settings})" if settings else f"#{row['rank']}"
    ranked = [variant for variant in labels if variant in set(gap["variant"])]
    leaders = gap.set_index("variant").loc[ranked].reset_index()
    leaders["variant"] = leaders["variant"].map(labels)
    return leaders


def _plain(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


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
class Plot:
    title: str
    png: Path
    csv: Path | None  # the numbers behind it (Optuna's own plots have none of ours)


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



def claims_for(analysis: Analysis, covloss: Mapping | None, covloss_problem: str = "") -> pd.DataFrame:
    """paper_claims.csv for this analysis (covloss: the sweep's covloss_sampling.json record, if any)."""
    spec = analysis.spec
    sweep = paper_claims.Sweep(analysis.runs, tuple(v.name for v in analysis.variants), spec.domains, spec.dataset,
                               load_published(), covloss, covloss_problem, spec.data)
    return paper_claims.claims_frame(paper_claims.evaluate(sweep))


NO_DIAGNOSTICS = ("The runs carry no diagnostics (no ia_*/di_* values): they ran before the diagnostics existed or "
                  "with diagnostics=false, so Figs. 2, 4 and 5 are not drawn; rerun the sweep to get them.")


def write_mechanism_plots(analysis: Analysis, artefacts: mechanism.Artefacts, unreadable: Sequence[str],
                          out_dir: Path) -> tuple[list[Plot], list[str]]:
    """(plots, notes): Figs. 2a, 2b, 4 and 5 from the runs' diagnostics; a note for each one not drawn, and why."""
    spec, runs = analysis.spec, analysis.runs
    names = [v.name for v in analysis.variants]
    domains = [d for d in spec.domains if d != "overall"]
    made, notes = [], []
    if unreadable:
        notes.append(f"{len(unreadable)} diagnostics artefact(s) could not be read and are left out: "
                     f"{'; '.join(unreadable[:5])}{' ...' if len(unreadable) > 5 else ''}.")
    diagnosed = [c for c in runs.columns if c.startswith(("ia_", "di_")) and mechanism.has_column(runs, c)]
    if not diagnosed and not artefacts:
        return made, [*notes, NO_DIAGNOSTICS]

    def add(title: str, frame: pd.DataFrame, stem: str, draw) -> None:
        made.append(Plot(title, draw(out_dir / f"{stem}.png"), out_dir / f"{stem}.csv"))
        frame.to_csv(made[-1].csv, index=False)

    epochs = mechanism.ia_epochs_frame(artefacts, names, domains)
    if len(epochs):
        shown = mechanism.top_variants(epochs, runs, names)
        more = "" if len(shown) == epochs["variant"].nunique() else \
            f"; the {len(shown)} best by test AUC drawn, every variant in the CSV"
        add(f"IA of expert outputs per domain over epochs (Fig. 2a{more})", epochs, "ia_epochs",
            lambda path: plots.plot_ia_epochs(epochs[epochs["variant"].isin(shown)], shown, domains, path, spec.name))
    else:
        notes.append("IA over epochs (Fig. 2a) not drawn: no diagnostics artefact has per-epoch entries; run the "
                     "sweep with diagnostics_every=1 (e.g. `python sweeper/run.py --space <space> "
                     "diagnostics_every=1`).")
    frequency = mechanism.ia_frequency_frame(runs, names)
    if len(frequency):
        add("IA of item-id embeddings by exposure-frequency group (Fig. 2b)", frequency, "ia_frequency",
            lambda path: plots.plot_ia_frequency(frequency, path, spec.name))
    else:
        notes.append("IA by item frequency (Fig. 2b) not drawn: the rows have no ia_item_id_freq1..5 values.")
    tail = mechanism.tail_domain(runs, spec.domains)
    table = f"item_id_{tail}"
    spectra = mechanism.spectra_frame(artefacts, names, table) if tail else pd.DataFrame()
    if len(spectra):
        add(f"Singular-value spectrum of the tail domain's item table {table} (Fig. 4; {mechanism.TAIL_RULE})",
            spectra, f"spectrum_{table}", lambda path: plots.plot_spectra(spectra, path, spec.name, table))
    else:
        notes.append(f"Spectra (Fig. 4) not drawn: {len(artefacts)} of {len(runs)} runs have a diagnostics artefact, "
                     f"and none holds the spectrum {table}.")
    di = mechanism.di_pairs_frame(runs, names, spec.domains)
    if len(di):
        add("Diversity Index per domain pair, sorted (Fig. 5)", di, "di_pairs",
            lambda path: plots.plot_di_pairs(di, path, spec.name))
    else:
        notes.append("Sorted DI (Fig. 5) not drawn: the rows have no di_<a>_<b> values (models without experts have "
                     "none).")
    return made, notes


def write_report(sweep_dir: Path | str, wandb_mode: str | None = None, top_k: int = 10,
                 partial: str | None = None) -> Path:
    """Write SWEEP_DIR/report/ (see the module docstring) and return that directory.

    Finds everything from sweep_dir: sweep.json, results/*.parquet, and the Optuna journal at
    sweep.json's optuna_storage (a relative path is taken relative to sweep_dir).
    wandb_mode: a --wandb choice (sweeper.wandb_log.CHOICES); "online"/"offline" (or "auto") log a
    report run into the sweep's W&B group; None or "off" do not.
    partial: why the results are not complete (a stopped sweep): shown at the top of the report and
    in report/PARTIAL, which a later complete report removes.
    """
    wandb_mode = wandb_log.resolve_mode(wandb_mode or "off")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    sweep_dir = Path(sweep_dir)
    (sweep_dir / "report" / VERDICTS_TXT).unlink(missing_ok=True)  # never print an earlier report's answer
    analysis = analyse(load_spec(sweep_dir), load_results(sweep_dir), load_published(), top_k)
    aside = ResultsStore(str(sweep_dir)).set_aside()
    if aside:
        analysis = replace(analysis, notes=(*analysis.notes, f"{len(aside)} unreadable results file(s) were set "
                                            f"aside in results/.corrupt/ (their (cell, seed)s count as not stored "
                                            f"and run again on resume)."))
    analysis = replace(analysis, tuning=choices_frame(sweep_dir))
    store = ResultsStore(str(sweep_dir))
    artefacts, unreadable = mechanism.read_artefacts(store, analysis.runs)
    spec = analysis.spec  # with domains filled in from the results where sweep.json has none
    # A search's trials are single-seed and chosen on validation: no claim is checked on them.
    if spec.study != "search":
        analysis = replace(analysis, claims=claims_for(analysis, *paper_claims.read_covloss(store)))
    out_dir = sweep_dir / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    marker = out_dir / "PARTIAL"
    if partial:
        marker.write_text(partial + "\n")
    else:
        marker.unlink(missing_ok=True)

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

    importances, optuna_made, optuna_note = Importances(None, ""), [], ""
    if spec.study == "search" or spec.optuna_storage:
        storage = Path(spec.optuna_storage) if spec.optuna_storage else None
        if storage is not None and not storage.is_absolute():
            storage = sweep_dir / storage
        importances = optuna_importances(storage, spec.optuna_study, spec.seeds_per_trial)
        drawn, optuna_note = optuna_report.optuna_plots(storage, spec.optuna_study, out_dir)
        optuna_made = [Plot(f"Optuna: {plot.title}", plot.png, None) for plot in drawn]
    made = write_plots(analysis, importances, out_dir) + optuna_made
    if analysis.claims is not None:
        shown, missing = write_mechanism_plots(analysis, artefacts, unreadable, out_dir)
        analysis = replace(analysis, mechanism_plots=tuple(shown), mechanism_notes=tuple(missing))
        analysis.claims.to_csv(out_dir / "paper_claims.csv", index=False)
        made = made + shown

    wandb_note = "W&B logging off." if wandb_mode == "off" else log_to_wandb(
        wandb_mode, analysis, importances, made, sweep_dir)
    (out_dir / "report.html").write_text(render_html(analysis, importances, made, wandb_note, optuna_note, partial))
    write_verdicts(analysis, out_dir)
    return out_dir


# ---------------------------------------------------------------- the answer first (verdicts)

VERDICTS_TXT = "verdicts.txt"


def write_verdicts(analysis: Analysis, out_dir: Path) -> None:
    """verdicts.csv, report.md (verdicts first) and, last, verdicts.txt: the lines a sweep ends with."""
    analysis.verdicts.to_csv(out_dir / "verdicts.csv", index=False)
    if analysis.bayes is not None:
        analysis.bayes.to_csv(out_dir / "bayes_gap.csv", index=False)
    (out_dir / "report.md").write_text(render_markdown(analysis))
    (out_dir / VERDICTS_TXT).write_text("".join(f"{line}\n" for line in analysis.headline))


def print_verdicts(sweep_dir: Path | str) -> None:
    """Print the verdict lines of the report just written (nothing if it was not written)."""
    if "://" in str(sweep_dir):
        return
    path = Path(sweep_dir) / "report" / VERDICTS_TXT
    if path.is_file():
        print("verdicts:")
        for line in path.read_text().splitlines():
            print(f"  {line}")


def _verdict_class(line: str) -> str:
    for verdict in (verdicts.NOT_TESTABLE, verdicts.NOT_SHOWN, verdicts.BETTER, verdicts.WORSE):
        if f": {verdict}" in line:
            return verdict.replace(" ", "-")
    for flag in (verdicts.UNDERTRAINED, verdicts.DATA_LIMITED):
        if f": {flag}" in line:
            return flag.split(":")[0]
    return "note"


def render_markdown(analysis: Analysis) -> str:
    spec = analysis.spec
    parts = [f"# Sweep report: {spec.name}", "", "## Verdicts", ""] + [f"- {line}" for line in analysis.headline]
    parts += claims_markdown(analysis)
    parts += ["", "## Table", "", tables.to_markdown(analysis.table)]
    if analysis.domain_table is not None:
        parts += ["## Per-domain table", "", tables.to_markdown(analysis.domain_table)]
    parts += ["## Significance protocol", "", PROTOCOL, "",
              "Every comparison, with its family and test: `stats.csv`; verdicts: `verdicts.csv`; the page with "
              "plots: `report.html`.", ""]
    if analysis.notes:
        parts += ["## Notes", ""] + [f"- {note}" for note in analysis.notes] + [""]
    return "\n".join(parts)


CLAIMS_HEADING = "The paper's claims on this sweep"
CLAIMS_INTRO = ("Each claim of the paper that this sweep's variants can speak to, matched by their config columns "
                "(sweeper.paper_claims): reproduced, not reproduced (the evidence says whether the sweep showed the "
                "opposite or could not show it), or not testable here, with the reason. Tests are paired over "
                "seeds, one-sided in the claimed direction at 0.05; a claim over several pairs needs every pair "
                "to pass. Claims are separate questions, not one family.")


def claims_markdown(analysis: Analysis) -> list[str]:
    if analysis.claims is None:
        return []
    parts = ["", f"## {CLAIMS_HEADING}", "", CLAIMS_INTRO, ""]
    for claim in analysis.claims.itertuples(index=False):
        parts.append(f"- **{claim.status}**: {claim.line}")
        if claim.evidence:
            parts.append(f"  - Numbers: {claim.evidence}")
    parts += ["", "### Mechanism plots (Figs. 2, 4, 5)", ""]
    parts += [f"- {plot.title}: `{plot.png.name}` (numbers: `{plot.csv.name}`)" for plot in analysis.mechanism_plots]
    parts += [f"- {note}" for note in analysis.mechanism_notes]
    return parts


# ---------------------------------------------------------------- W&B


def log_to_wandb(mode: str, analysis: Analysis, importances: Importances, made: Sequence[Plot],
                 sweep_dir: Path) -> str:
    """The report run: in the sweep's group, job_type "report", numeric W&B Tables and every plot
    as an image. Never raises. Credentials come from the user's own W&B login or environment.
    """
    spec = analysis.spec
    target = wandb_log.target_for(mode, spec.name, str(sweep_dir))
    try:
        import wandb

        run = wandb_log.init_run(target, name=f"{spec.name}-report", job_type="report",
                                 config={"sweep": spec.name, "study": spec.study, "table": spec.table,
                                         "data": spec.data, "seeds": list(spec.seeds)})
        try:
            run.log({**{key: wandb.Table(dataframe=numeric_frame(frame)) for key, frame in wandb_tables(analysis,
                                                                                                     importances)},
                     **{f"plot/{plot.png.stem}": wandb.Image(str(plot.png), caption=plot.title) for plot in made}})
        finally:
            run.finish()
            # The report run is the process's last: stopping W&B's service here flushes its file
            # before the sweep reads the offline runs back.
            wandb.teardown()
        return f"Logged the report run to W&B ({mode}): {run.name}, group {spec.name}."
    except Exception as error:  # W&B is a convenience: its failure must never cost the report
        print(f"warning: W&B logging failed: {type(error).__name__}: {error}", file=sys.stderr)
        return f"W&B logging ({mode}) failed: {type(error).__name__}: {error}"


def wandb_tables(analysis: Analysis, importances: Importances) -> list[tuple[str, pd.DataFrame]]:
    """(key, frame) of every table the report run logs: numbers stay numbers."""
    runs = analysis.runs
    metric_columns = [c for c in runs.columns if c.startswith(("test_", "val_"))]
    identity = [c for c in ("variant", "seed", "cell", *FACTOR_COLUMNS) if c in runs.columns]
    out = [("results", runs[identity + metric_columns]), ("summary", analysis.summary), ("stats", analysis.stats),
           ("verdicts", analysis.verdicts)]
    if analysis.claims is not None:
        out.append(("paper_claims", analysis.claims))
    if analysis.published is not None:
        out.append(("published", analysis.published))
    if analysis.best is not None:
        out.append(("best_configs", analysis.best))
    if importances.frame is not None:
        out.append(("importances", importances.frame))
    return out


def numeric_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns W&B can type: numpy scalars as Python numbers, booleans kept, the rest as text."""
    out = frame.reset_index(drop=True).copy()
    for column in out.columns:
        series = out[column]
        if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
            continue
        numeric = pd.to_numeric(series, errors="coerce")
        out[column] = numeric if numeric.notna().sum() == series.notna().sum() else series.astype(str)
    return out


# ---------------------------------------------------------------- HTML

def render_html(analysis: Analysis, importances: Importances, made: Sequence[Plot], wandb_note: str,
                optuna_note: str = "", partial: str | None = None) -> str:
    """report.html (sweeper.report_html): verdicts, table, plots, published, Optuna, stats, metadata."""
    spec = analysis.spec
    search = spec.study == "search"
    optuna_plots = [p for p in made if p.csv is None or p.png.stem == "importances"]
    figures = [report_html.Figure(p.title, p.png, f"{p.title} (numbers: {p.csv.name})")
               for p in made if p not in optuna_plots and p not in analysis.mechanism_plots]
    optuna = None
    if search or importances.note:
        optuna = {"importances": importances.frame, "caution": importances.caution,
                  "notes": [n for n in (importances.note, optuna_note) if n],
                  "figures": [report_html.Figure(p.title, p.png, p.title) for p in optuna_plots]}
    table_blocks = [("Best configurations" if search else "Table", analysis.table)]
    if analysis.domain_table is not None:
        table_blocks.append(("Per-domain table", analysis.domain_table))
    if analysis.tuning is not None:
        table_blocks.append(("Tuning", tables.frame_table(analysis.tuning, TUNING_TITLE)))
    label = next((c for c in analysis.published.columns if c.startswith("published (")), "published") \
        if analysis.published is not None else ""
    page = report_html.Page(
        name=spec.name, facts=_facts(analysis), partial=partial,
        headline=[(line, _verdict_class(line)) for line in analysis.headline],
        verdicts=analysis.verdicts, tables=table_blocks, figures=figures,
        published=analysis.published, published_label=label, optuna=optuna,
        missing=analysis.missing if len(analysis.missing) else None,
        # A search declares no comparisons: no statistics section rather than an empty one.
        stats=analysis.stats if len(analysis.stats) and not search else None, protocol=PROTOCOL,
        notes=(*analysis.notes, wandb_note), meta=_meta_items(analysis), claims=_claims_block(analysis))
    return report_html.render(page)


def _claims_block(analysis: Analysis) -> dict | None:
    """The claims section and the mechanism plots, for report_html.Page.claims."""
    if analysis.claims is None:
        return None
    items = [{"status": c.status, "kind": c.status.replace(" ", "-"), "line": c.line, "evidence": c.evidence}
             for c in analysis.claims.itertuples(index=False)]
    figures = [report_html.Figure(p.title, p.png, f"{p.title} (numbers: {p.csv.name})")
               for p in analysis.mechanism_plots]
    return {"heading": CLAIMS_HEADING, "intro": CLAIMS_INTRO, "items": items, "figures": figures,
            "notes": list(analysis.mechanism_notes)}


def _facts(analysis: Analysis) -> list[str]:
    """The one line under the title: what ran, on what, and how much of it finished."""
    spec, runs = analysis.spec, analysis.runs
    if spec.study == "search":
        shape = f"{runs['variant'].nunique() if len(runs) else 0} finished trials x {spec.seeds_per_trial} seed(s)"
        finished = f"{len(analysis.missing)} failed seed(s)"
    else:
        shape = f"{len(analysis.variants)} variants \u00d7 {len(spec.seeds)} seeds"
        finished = f"{len(runs)} of {len(analysis.variants) * len(spec.seeds)} runs finished"
    data = f"{spec.data} ({tables.PUBLISHED_NAMES.get(spec.dataset, 'synthetic')})"
    commits = ", ".join(sorted({str(v) for v in runs.get("git_commit", pd.Series(dtype=str)).dropna()}))
    return [f"{spec.study} study, table {spec.table}", data, shape, finished] + ([f"git {commits}"] if commits else [])


def _meta_items(analysis: Analysis) -> list[tuple[str, str]]:
    spec, runs = analysis.spec, analysis.runs
    items = [("study", spec.study), ("table", spec.table), ("layout", spec.layout), ("data", spec.data),
             ("dataset", spec.dataset or "synthetic"), ("seeds", ", ".join(map(str, spec.seeds))),
             ("variants", str(len(analysis.variants))), ("finished (variant, seed) pairs", str(len(runs))),
             ("missing (variant, seed) pairs", str(len(analysis.missing)))]
    for column in PROVENANCE_COLUMNS:
        if column in runs.columns:
            items.append((column, ", ".join(sorted({str(v) for v in runs[column].dropna()}))))
    return items


# ---------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeper.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path, help="directory with sweep.json and results/")
    parser.add_argument("--wandb", choices=wandb_log.CHOICES, default="off",
                        help="log the report run (tables, plots) into the sweep's W&B group; auto: online with "
                             "a W&B key, else offline (default: off)")
    parser.add_argument("--top-k", type=int, default=10, help="best configurations listed for a search")
    args = parser.parse_args(argv)
    problem = wandb_log.credentials_problem(wandb_log.resolve_mode(args.wandb))
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        out_dir = write_report(args.sweep_dir, wandb_mode=args.wandb, top_k=args.top_k)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report written to {out_dir / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
