"""Hand-made sweep directories in the results-store format the sweep service writes.

make_sweep(tmp_path, layout) writes SWEEP_DIR/sweep.json and one parquet file per run under
SWEEP_DIR/results/, with made-up but deterministic scores: value = domain base + variant shift +
seed effect (shared by all variants: same seed, same data order) + a small fixed jitter.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DOMAINS = ["S0", "S1", "S2", "S4", "S6"]
SEEDS = [0, 1, 2, 3, 4, 5]
BASE = {"auc": {"S0": 0.736, "S1": 0.743, "S2": 0.821, "S4": 0.728, "S6": 0.760, "overall": 0.786},
        "gauc": {"S0": 0.602, "S1": 0.597, "S2": 0.563, "S4": 0.563, "S6": 0.627, "overall": 0.661},
        "logloss": {d: 0.55 for d in [*DOMAINS, "overall"]}}
SEED_EFFECT = np.array([0.0004, -0.0003, 0.0001, -0.0002, 0.0003, -0.0001])
# "(PlacementGroupCleaner pid=6785) ..." or "(raylet) ...", maybe coloured: a log line Ray forwarded from a worker.
RAY_WORKER_LINE = re.compile(r"^(\x1b\[[0-9;]*m)?\((raylet|\w+ pid=\d+)")


@pytest.fixture
def our_stderr(capsys):
    """Reads captured stderr without Ray's worker-log lines. A Ray session that an earlier test left up in
    this process forwards its workers' logs to stderr whenever they arrive, in whatever test runs then."""
    def read() -> str:
        lines = [line for line in capsys.readouterr().err.splitlines() if not RAY_WORKER_LINE.match(line)]
        return "".join(line + "\n" for line in lines)
    return read


def run_row(sweep: str, study: str, variant: str, seed: int, shift: float, factors: dict, jitter: np.ndarray,
            finished_at: float, status: str = "ok", error: str = "") -> dict:
    row = {"sweep": sweep, "study": study, "variant": variant, "cell": hashlib.sha1(variant.encode()).hexdigest()[:12],
           **factors, "seed": seed, "lr": 1e-3, "batch_size": 4096, "epochs": 5}
    for split in ("val", "test"):
        for metric, bases in BASE.items():
            sign = -1.0 if metric == "logloss" else 1.0
            for domain, base in bases.items():
                value = base + sign * shift + SEED_EFFECT[seed] + jitter[len(row) % len(jitter)]
                row[f"{split}_{metric}_{domain}"] = value if status == "ok" else np.nan
    row.update(best_epoch=3, epochs_run=5, wall_time_s=12.5, samples_per_s=1e5, status=status, error=error,
               git_commit="abc1234", host="node-1", device="cpu", torch_version="2.13.0", ray_version="2.60.0",
               optuna_version="5.0.0", finished_at=finished_at)
    return row


def write_sweep(sweep_dir: Path, spec: dict, rows: list[dict]) -> Path:
    (sweep_dir / "results").mkdir(parents=True, exist_ok=True)
    (sweep_dir / "sweep.json").write_text(json.dumps(spec, indent=2))
    for index, row in enumerate(rows):
        pd.DataFrame([row]).to_parquet(sweep_dir / "results" / f"{index:04d}-{row['variant']}-{row['seed']}.parquet")
    return sweep_dir


def hypothesis(variant: str, reference: str, metrics: list[str], domain: str = "overall") -> dict:
    """A declared hypothesis in sweep.json form."""
    return {"variant": variant, "references": [reference], "metrics": metrics, "domain": domain, "test": "single"}


def base_spec(name: str, table: str, layout: str, variants: list[dict], comparisons: list[dict], **extra) -> dict:
    spec = {"name": name, "study": "replicate", "table": table, "layout": layout, "data": "synthetic:tiny",
            "dataset": None, "domains": DOMAINS, "metrics": ["auc", "gauc"], "seeds": SEEDS,
            "variants": variants, "comparisons": comparisons, "published_method": {}, "optuna_storage": None,
            "optuna_study": None, "direction": "maximize", "objective": "val_auc_overall"}
    spec.update(extra)
    return spec


def rows_sweep(sweep_dir: Path) -> Path:
    """Table 5 on synthetic data: Crocodile's seed 5 failed; ME-MMoE's seed 2 failed once, then ran ok."""
    shifts = {"MMoE": 0.0, "ME-MMoE": 0.0002, "Crocodile": 0.0015}
    factors = {"MMoE": dict(embedding="SE", gating="standard", aux_loss="none", alpha=0.0),
               "ME-MMoE": dict(embedding="ME", gating="standard", aux_loss="none", alpha=0.0),
               "Crocodile": dict(embedding="ME", gating="peg", aux_loss="cov", alpha=1e-3)}
    rng = np.random.default_rng(2024)
    rows, clock = [], 1000.0
    for variant, shift in shifts.items():
        for seed in SEEDS:
            clock += 1
            jitter = rng.normal(0, 1e-4, 7)
            if variant == "Crocodile" and seed == 5:
                rows.append(run_row("t5", "replicate", variant, seed, shift, factors[variant], jitter, clock,
                                    status="failed", error="RuntimeError: out of memory"))
                continue
            if variant == "ME-MMoE" and seed == 2:
                rows.append(run_row("t5", "replicate", variant, seed, shift, factors[variant], jitter, clock,
                                    status="failed", error="worker died"))
                clock += 1
            rows.append(run_row("t5", "replicate", variant, seed, shift, factors[variant], jitter, clock))
    spec = base_spec("t5", "table5", "rows", [{"name": v, "factors": f, "series": None, "x": None}
                                              for v, f in factors.items()],
                     [{"variant": "ME-MMoE", "reference": "MMoE"}, {"variant": "Crocodile", "reference": "MMoE"}],
                     published_method={"MMoE": "embedding=SE gating=standard loss=bce (MMoE base)",
                                       "Crocodile": "embedding=ME gating=PEG loss=bce+cov (Crocodile)"},
                     hypotheses=[hypothesis("Crocodile", "MMoE", ["auc", "gauc"])])
    return write_sweep(sweep_dir, spec, rows)


def alpha_sweep(sweep_dir: Path) -> Path:
    alphas = [0.0, 1e-5, 1e-4, 1e-3, 1e-2]
    rng = np.random.default_rng(7)
    variants, rows, clock = [], [], 1000.0
    for alpha in alphas:
        name = f"alpha={alpha:g}"
        variants.append({"name": name, "factors": {"alpha": alpha}, "series": "Crocodile", "x": alpha})
        for seed in SEEDS:
            clock += 1
            shift = 0.0 if alpha == 0 else 0.0008 - 0.0002 * abs(np.log10(alpha) + 3)
            rows.append(run_row("alpha", "replicate", name, seed, shift, {"alpha": alpha, "aux_loss": "cov"},
                                rng.normal(0, 1e-4, 7), clock))
    spec = base_spec("alpha", "alpha", "alpha", variants,
                     [{"variant": v["name"], "reference": "alpha=0"} for v in variants[1:]],
                     hypotheses=[hypothesis("alpha=0.001", "alpha=0", ["auc", "gauc"])])
    return write_sweep(sweep_dir, spec, rows)


def num_embeddings_sweep(sweep_dir: Path) -> Path:
    """Table 6 on (pretend) KuaiRand-1K, so the published numbers are matched and differenced."""
    rng = np.random.default_rng(11)
    variants, comparisons, published, rows, clock = [], [], {}, [], 1000.0
    for m in (2, 3, 4):
        for series, shift in (("ME-MMoE-PG", 0.0), ("Crocodile", 0.001)):
            name = f"{series} M={m}"
            variants.append({"name": name, "factors": {"num_embeddings": m}, "series": series, "x": m})
            published[name] = f"{series} num_embeddings={m}"
            for seed in SEEDS:
                clock += 1
                rows.append(run_row("t6", "replicate", name, seed, shift + 0.0001 * m, {"num_embeddings": m},
                                    rng.normal(0, 1e-4, 7), clock))
        comparisons.append({"variant": f"Crocodile M={m}", "reference": f"ME-MMoE-PG M={m}"})
    spec = base_spec("t6", "table6", "num_embeddings", variants, comparisons, data="kuairand1k:/data/kr",
                     dataset="kuairand1k", published_method=published,
                     hypotheses=[hypothesis(f"Crocodile M={m}", f"ME-MMoE-PG M={m}", ["gauc"]) for m in (2, 3, 4)])
    return write_sweep(sweep_dir, spec, rows)


def search_sweep(sweep_dir: Path, with_journal: bool = True) -> Path:
    """A random search of 8 single-seed trials; the Optuna journal holds the same trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = np.random.default_rng(3)
    trials = [{"alpha": float(10 ** rng.uniform(-5, -2)), "num_embeddings": int(rng.integers(2, 8)),
               "gating": str(rng.choice(["pg", "peg"]))} for _ in range(8)]
    rows = []
    for index, params in enumerate(trials):
        shift = 0.0002 * params["num_embeddings"] + (0.001 if params["gating"] == "peg" else 0.0)
        rows.append(run_row("search", "search", f"trial-{index}", 0, shift, params, rng.normal(0, 1e-4, 7),
                            1000.0 + index))
    journal = sweep_dir / "optuna.journal"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if with_journal:
        storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
        study = optuna.create_study(study_name="search", storage=storage, direction="maximize")
        distributions = {"alpha": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True),
                         "num_embeddings": optuna.distributions.IntDistribution(2, 8),
                         "gating": optuna.distributions.CategoricalDistribution(["pg", "peg"])}
        for params, row in zip(trials, rows):
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions,
                                                      value=row["val_auc_overall"]))
    spec = base_spec("search", "search", "search", [], [], study="search", seeds=[0],
                     optuna_storage="optuna.journal", optuna_study="search")
    return write_sweep(sweep_dir, spec, rows)


# ---- diagnostics, following the producer's contract (DIAG_CONTRACT.md): ia_*/di_* columns, an artefact per run

DIAG_VARIANTS = {  # name: (factors, AUC shift, tail-domain item IA, DI, spectrum decay per index)
    "MMoE": (dict(architecture="crocodile", embedding="SE", gating="standard", aux_loss="none"), 0.0, 7.0, 0.20, 0.30),
    "ME-MMoE-PG": (dict(architecture="crocodile", embedding="ME", gating="pg", aux_loss="none"), 0.0005, 8.0, 0.25,
                   0.25),
    "ME-MMoE-PG+Cov": (dict(architecture="crocodile", embedding="ME", gating="pg", aux_loss="cov"), 0.0010, 8.5, 0.25,
                       0.20),
    "Crocodile": (dict(architecture="crocodile", embedding="ME", gating="peg", aux_loss="cov"), 0.0015, 9.0, 0.32,
                  0.15),
    "STEM": (dict(architecture="stem", embedding="ME", gating="standard", aux_loss="none"), 0.0012, 5.0, 0.35, 0.60),
}


def diagnostic_columns(rng: np.random.Generator, tail_ia: float, di: float, path: str) -> dict:
    """The contract's columns of one row (a subset of the 16 sets and experts: the rest are null)."""
    row = {"ia_item_id": tail_ia + 2, "ia_user_id": tail_ia + 1, "diagnostics_s": 1.5, "diagnostics_path": path}
    for dom in DOMAINS:
        row[f"ia_item_id_{dom}"] = (tail_ia if dom == "S6" else tail_ia + 3) + rng.normal(0, 0.2)
        row[f"ia_user_id_{dom}"] = tail_ia + 1 + rng.normal(0, 0.2)
        row[f"ia_expert_{dom}"] = 20 + rng.normal(0, 1)
        row[f"ia_expert0_{dom}"] = row[f"ia_expert_{dom}"]
    for group in range(1, 6):
        row[f"ia_item_id_freq{group}"] = tail_ia + 6 - group + rng.normal(0, 0.2)
    pairs = [(a, b) for i, a in enumerate(DOMAINS) for b in DOMAINS[i + 1:]]
    for index, (a, b) in enumerate(pairs):
        row[f"di_{a}_{b}"] = di + 0.01 * index + rng.normal(0, 0.01)
    row["di_mean"] = float(np.mean([row[f"di_{a}_{b}"] for a, b in pairs]))
    return row


def diagnostics_sweep(sweep_dir: Path, epochs: bool = True) -> Path:
    """Table 5-like rows plus STEM, each run with diagnostics columns and a JSON artefact; covloss_sampling.json."""
    rng = np.random.default_rng(5)
    rows, clock = [], 1000.0
    (sweep_dir / "diagnostics").mkdir(parents=True, exist_ok=True)
    for variant, (factors, shift, tail_ia, di, decay) in DIAG_VARIANTS.items():
        factors = dict(factors, num_embeddings=5, alpha=0.1, aux_rows=1024)
        for seed in SEEDS:
            clock += 1
            row = run_row("diag", "replicate", variant, seed, shift, factors, rng.normal(0, 1e-4, 7), clock)
            path = f"diagnostics/{row['cell']}-s{seed}-a1.json"
            row.update(diagnostic_columns(rng, tail_ia, di, path))
            scalars = {k: v for k, v in row.items() if k.startswith(("ia_", "di_"))}
            artefact = {"best_epoch": 3, "scalars": scalars,
                        "spectra": {"item_id_S6": [-decay * i + rng.normal(0, 0.02) * (i > 0) for i in range(16)],
                                    "item_id_set0": [-0.1 * i for i in range(16)]},
                        "epochs": [{"epoch": e, **{f"ia_expert_{d}": 10 + e * (1 + shift * 1000) + rng.normal(0, 0.2)
                                                   for d in DOMAINS}} for e in range(1, 6)] if epochs else []}
            (sweep_dir / path).write_text(json.dumps(artefact))
            rows.append(row)
    spec = base_spec("diag", "table5", "rows", [{"name": v, "factors": f, "series": None, "x": None}
                                                for v, (f, *_) in DIAG_VARIANTS.items()],
                     [{"variant": v, "reference": "MMoE"} for v in DIAG_VARIANTS if v != "MMoE"],
                     hypotheses=[hypothesis("Crocodile", "MMoE", ["auc", "gauc"])])
    (sweep_dir / "covloss_sampling.json").write_text(json.dumps(
        {"data": "synthetic:small", "rows": [32, 1024], "epochs": 1, "p_threshold": 0.1, "n": 196,
         "mean_small": 0.0963, "mean_large": 0.1, "mean_diff": -0.0037, "ratio": 0.963, "t_p": 0.016,
         "wilcoxon_p": 0.051, "same": False}))
    return write_sweep(sweep_dir, spec, rows)


@pytest.fixture
def make_sweep(tmp_path):
    builders = {"diagnostics": diagnostics_sweep, "diagnostics-no-epochs": lambda p: diagnostics_sweep(p, False),
                "rows": rows_sweep, "alpha": alpha_sweep, "num_embeddings": num_embeddings_sweep,
                "search": search_sweep, "search-no-journal": lambda path: search_sweep(path, with_journal=False)}

    def make(layout: str) -> Path:
        return builders[layout](tmp_path / layout)
    return make
