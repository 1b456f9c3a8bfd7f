"""Run a sweep: `python sweeper/run.py [--space FILE] [key=value ...]` or via `ray submit`.

With no arguments: the Table 5 ablation at a laptop budget on synthetic data, on a local Ray
started in-process. On a cluster (RAY_ADDRESS set, `--address`, or a running local cluster) the
same command uses the cluster. `ray submit` copies only this file to the head node, so it
imports the installed `sweeper` and `model` packages and nothing beside it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script: drop this file's folder from the path (it would shadow nothing useful) and,
    # inside a source checkout that is not installed, make the repository importable.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    if (here.parent / "sweeper" / "__init__.py").exists() and (here.parent / "model").is_dir():
        sys.path.insert(0, str(here.parent))

from model.datasets import check_spec  # noqa: E402
from model.train import SMOKE_OVERRIDES  # noqa: E402
from sweeper.space import Space, SpaceError, Variant, cell_key, load_space  # noqa: E402
from sweeper.store import OK, ResultsStore, join, resolve  # noqa: E402
from sweeper.trial import Job  # noqa: E402

DEFAULT_SPACE, DEFAULT_PROFILE = "table5_ablation", "laptop"
WANDB_MODES = ("auto", "online", "offline", "off")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sweeper/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config settings applied to every trial")
    parser.add_argument("--space", help=f"a search space file or shipped name (default: {DEFAULT_SPACE} "
                                        f"with profile {DEFAULT_PROFILE})")
    parser.add_argument("--profile", help="a named profile of the space file (e.g. laptop)")
    parser.add_argument("--data", help="dataset spec, e.g. synthetic:small, kuairand1k:/data/kr (default: the space's)")
    parser.add_argument("--storage", default="./sweeps", help="local dir or pyarrow URI (s3://...) shared by all nodes")
    parser.add_argument("--name", help="sweep name (default: the space's name)")
    parser.add_argument("--seeds", help="comma-separated seeds replacing the space's")
    parser.add_argument("--wandb", choices=WANDB_MODES, default=None,
                        help="auto: online with WANDB_API_KEY, else offline (default: auto when WANDB_API_KEY "
                             "is set, else off)")
    parser.add_argument("--address", help="Ray address (default: RAY_ADDRESS, a running cluster, else local)")
    parser.add_argument("--rerun-failed", action="store_true", help="run again the (cell, seed)s stored as failed")
    parser.add_argument("--force", action="store_true", help="run every (cell, seed) again")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, 1 epoch, 2 seeds, <= 4 search trials")
    parser.add_argument("--no-report", action="store_true", help="skip writing report/ at the end")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> tuple[Space, dict, str]:
    """Everything checked before Ray starts: (space, base config, data spec)."""
    profile = args.profile if args.profile else (DEFAULT_PROFILE if args.space is None and not args.smoke_test else None)
    space = load_space(args.space or DEFAULT_SPACE, profile)
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpaceError(f"override {item!r} must look like key=value")
        overrides[key] = value
    base = {**space.base, **(SMOKE_OVERRIDES if args.smoke_test else {}), **overrides}
    seeds = space.seeds
    if args.seeds:
        try:
            seeds = tuple(int(s) for s in args.seeds.split(","))
        except ValueError:
            raise SpaceError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if args.smoke_test:
        seeds = seeds[:2]
    search = space.search
    if search is not None:
        if args.smoke_test:
            search = dataclasses.replace(search, num_trials=min(search.num_trials, 4), seeds_per_trial=1,
                                         asha=False)  # one epoch: nothing to prune
        if search.seeds_per_trial > len(seeds):
            raise SpaceError(f"{space.path}: search.seeds_per_trial is {search.seeds_per_trial} but only "
                             f"{len(seeds)} seeds are given")
    data = args.data or ("synthetic:tiny" if args.smoke_test else space.data)
    check_spec(data)
    tuning = space.tuning
    if tuning is not None and args.smoke_test:
        tuning = dataclasses.replace(tuning, seeds=tuning.seeds[:1])  # the same budget, one tuning seed
    space = dataclasses.replace(space, seeds=seeds, search=search, data=data, base=base,
                                name=args.name or space.name, tuning=tuning)
    # Validate every variant (and each configuration it tunes) against the final base before any work.
    from model.config import RunConfig
    for variant in space.variants:
        for values in variant.points():
            try:
                RunConfig().with_overrides({**base, **variant.factors, **values})
            except ValueError as exc:
                raise SpaceError(f"{space.path}: variant {variant.name!r}: {exc}") from None
    return space, base, data


def best_variants(space: Space, storage: str) -> tuple[Variant, ...]:
    """base_from: the top_k configurations of a finished search sweep, as named variants."""
    source_uri = join(space.base_from.storage or storage, space.base_from.sweep)
    source = ResultsStore(source_uri)
    meta = json.loads(source.read_text("sweep.json") or "null")
    frame = source.read()
    if meta is None or frame.empty:
        raise SpaceError(f"{space.path}: base_from.sweep: no finished search sweep at {source_uri}")
    objective, params = meta["objective"], meta["search_params"]
    ok = frame[frame["status"] == OK]
    ranked = ok.groupby("cell")[objective].mean().sort_values(ascending=meta.get("direction") != "maximize")
    variants = []
    for rank, cell in enumerate(ranked.index[:space.base_from.top_k], start=1):
        row = ok[ok["cell"] == cell].iloc[0]
        factors = {p: (row[p].item() if hasattr(row[p], "item") else row[p]) for p in params}
        variants.append(Variant(name=f"best-{rank}", factors=factors, reference=space.reference))
    return tuple(variants) + space.variants


def sweep_metadata(space: Space, data: str, storage_note: str, journal: str | None) -> dict:
    dataset = data.split(":", 1)[0] if data.split(":", 1)[0] in ("kuairand1k", "aliccp") else None
    from model.synthetic import DOMAIN_NAMES
    return {
        "name": space.name, "study": space.study, "table": space.table, "layout": space.layout, "data": data,
        "dataset": dataset, "domains": None if dataset else list(DOMAIN_NAMES), "metrics": list(space.metrics),
        "seeds": list(space.seeds),
        "variants": [{"name": v.name, "factors": v.factors, "series": v.series, "x": v.x} for v in space.variants],
        "comparisons": space.comparisons(), "published_method": space.published,
        "optuna_storage": journal, "optuna_study": space.name if space.search else None,
        "direction": "maximize" if space.search is None or space.search.mode == "max" else "minimize",
        "objective": space.search.metric if space.search else "val_auc_overall",
        "search_params": [p.name for p in space.search.params] if space.search else [],
        "base": space.base, "storage": storage_note, "created_at": time.time(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        space, base, data = plan(args)
    except (SpaceError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    storage = args.storage if "://" in args.storage else str(Path(args.storage).expanduser().resolve())
    sweep_uri = join(storage, space.name)
    store = ResultsStore(sweep_uri)
    if space.base_from is not None:
        space = dataclasses.replace(space, variants=best_variants(space, storage))
    wandb_mode = args.wandb or ("auto" if os.environ.get("WANDB_API_KEY") else "off")
    if wandb_mode == "auto":
        wandb_mode = "online" if os.environ.get("WANDB_API_KEY") else "offline"
    if space.tuning is not None:  # tuned study: tune first (reusing finished runs), then replicate
        from sweeper import tuned
        space = tuned.run_tuning(space, base, data, sweep_uri, force=args.force, rerun_failed=args.rerun_failed,
                                 address=args.address, wandb_mode=wandb_mode)
    journal = None
    if space.search is not None:
        local = "://" not in sweep_uri
        journal = f"{resolve(sweep_uri)[1]}/optuna.journal" if local else str(Path(f"{space.name}-optuna.journal").resolve())
        Path(journal).parent.mkdir(parents=True, exist_ok=True)
    store.write_text("sweep.json", json.dumps(sweep_metadata(space, data, storage, journal), indent=2, default=str))

    print(f"sweep {space.name!r} ({space.study}, {space.path}) on {data}; results in {sweep_uri}/results")
    started = time.time()
    if space.search is None:
        jobs, skipped = pending_jobs(space, base, data, sweep_uri, store, args)
        print(f"{len(jobs)} trials to run, {skipped} (cell, seed)s already stored")
        runnable = bool(jobs)
    else:
        completed = completed_search_trials(journal, space.name)
        remaining = max(space.search.num_trials - completed, 0) if not args.force else space.search.num_trials
        print(f"{remaining} search trials to run ({completed} of {space.search.num_trials} already complete)")
        runnable, jobs = remaining > 0, None
    if runnable:
        from sweeper import tune_runner  # Ray is imported only when there is work for it

        how = tune_runner.connect(args.address, with_dashboard=space.resources.workers > 0)
        print(f"Ray: {how}; trials: {'in-process' if space.resources.workers == 0 else f'{space.resources.workers} Ray Train worker(s)'}")
        template = None
        if space.search is not None:
            template = Job(sweep=space.name, study="search", variant="", factors={}, base=base,
                           seeds=space.seeds[:space.search.seeds_per_trial], data=data, sweep_uri=sweep_uri,
                           objective=space.search.metric)
        errors = tune_runner.run_tune(jobs=jobs, search=space.search, template_job=template,
                                      resources=space.resources, sweep_uri=sweep_uri, sweep_name=space.name,
                                      wandb_mode=wandb_mode, optuna_journal=journal,
                                      num_search_trials=remaining if space.search else 0)
        stored = tune_runner.store_trial_errors(errors, sweep_uri)
        if stored:
            print(f"{stored} seeds of crashed trials stored as failed")
    frame = store.read()
    ok = int((frame["status"] == OK).sum()) if not frame.empty else 0
    print(f"done in {time.time() - started:.0f} s: {ok} ok rows, {len(frame) - ok} failed rows in {sweep_uri}/results")
    if not args.no_report:
        write_report(sweep_uri, wandb_mode)
    return 0


def pending_jobs(space: Space, base: dict, data: str, sweep_uri: str, store: ResultsStore,
                 args: argparse.Namespace) -> tuple[list[Job], int]:
    """One job per (variant, seed) not yet stored (ok; failed too unless --rerun-failed)."""
    from model.config import RunConfig
    done, failed = (set(), set()) if args.force else store.stored()
    if args.rerun_failed:
        failed = set()
    jobs, skipped = [], 0
    for variant in space.variants:
        for seed in space.seeds:
            flat = RunConfig().with_overrides({**base, **variant.factors, "seed": seed}).flat()
            key = (cell_key(flat), seed)
            if key in done or key in failed:
                skipped += 1
                continue
            jobs.append(Job(sweep=space.name, study="replicate", variant=variant.name, factors=variant.factors,
                            base=base, seeds=(seed,), data=data, sweep_uri=sweep_uri))
    return jobs, skipped


def completed_search_trials(journal: str, study_name: str) -> int:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not Path(journal).exists():
        return 0
    try:
        study = optuna.load_study(study_name=study_name, storage=JournalStorage(JournalFileBackend(journal)))
    except KeyError:
        return 0
    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def write_report(sweep_uri: str, wandb_mode: str) -> None:
    if "://" in sweep_uri:
        print(f"report: fetch the sweep locally, then run: python -m sweeper.report DIR")
        return
    try:
        from sweeper.report import write_report as render
    except ImportError:
        return
    try:
        path = render(sweep_uri, wandb_mode=wandb_mode if wandb_mode != "off" else None)
        print(f"report: {path}")
    except Exception as exc:  # noqa: BLE001 - the results are safe; a report bug must not hide that
        print(f"report failed ({type(exc).__name__}: {exc}); results are intact; "
              f"retry with: python -m sweeper.report {sweep_uri}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
