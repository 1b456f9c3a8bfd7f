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
import shlex
import signal
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

from model.datasets import DataInfo, check_spec, describe_data  # noqa: E402
from model.train import SMOKE_OVERRIDES  # noqa: E402
from sweeper import console, exit_codes, wandb_log  # noqa: E402
from sweeper.claims import Claims  # noqa: E402
from sweeper.preflight import ResourceError, check_names, concurrency, trial_need  # noqa: E402
from sweeper.signals import graceful_stop  # noqa: E402
from sweeper.space import Space, SpaceError, Variant, cell_key, load_space, shipped_spaces  # noqa: E402
from sweeper.store import FAILED, OK, ResultsStore, join, resolve  # noqa: E402
from sweeper.trial import Job  # noqa: E402

DEFAULT_SPACE, DEFAULT_PROFILE = "table5_ablation", "laptop"


def spaces_help() -> str:
    """The --help epilog: every shipped space with its description and profiles."""
    lines = ["shipped spaces (--space NAME; --profile one of its profiles):"]
    for shipped in shipped_spaces():
        profiles = f" [profiles: {', '.join(shipped.profiles)}]" if shipped.profiles else ""
        lines.append(f"  {shipped.name:<22} {shipped.description}{profiles}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sweeper/run.py", description=__doc__.split("\n")[0],
                                     epilog=spaces_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config settings applied to every trial")
    parser.add_argument("--space", help=f"a search space file or shipped name (default: {DEFAULT_SPACE} "
                                        f"with profile {DEFAULT_PROFILE})")
    parser.add_argument("--profile", help="a named profile of the space file (e.g. laptop)")
    parser.add_argument("--data", help="dataset spec, e.g. synthetic:small, kuairand1k:/data/kr (default: the space's)")
    parser.add_argument("--storage", default="./sweeps", help="local dir or pyarrow URI (s3://...) shared by all nodes")
    parser.add_argument("--name", help="sweep name (default: the space's name)")
    parser.add_argument("--seeds", help="comma-separated seeds replacing the space's")
    parser.add_argument("--wandb", choices=wandb_log.CHOICES, default=None,
                        help="auto: online with a W&B key, else offline (default: auto when WANDB_API_KEY "
                             "is set, else off)")
    parser.add_argument("--address", help="Ray address (default: RAY_ADDRESS, a running cluster, else local)")
    parser.add_argument("--rerun-failed", action="store_true", help="run again the (cell, seed)s stored as failed")
    parser.add_argument("--force", action="store_true", help="run every (cell, seed) again")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, 1 epoch, 2 seeds, <= 4 search trials")
    parser.add_argument("--no-report", action="store_true", help="skip writing report/ at the end")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Ray's, Tune's and W&B's own output here instead of only in SWEEP_DIR/sweep.log")
    return parser.parse_args(argv)


def parse_overrides(items: list[str]) -> dict:
    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SpaceError(f"override {item!r} must look like key=value")
        overrides[key] = value
    return overrides


def check_overrides(space: Space, overrides: dict) -> None:
    """Each override's value, and that it changes at least one trial.

    An override that every variant (or the search) sets itself would be recorded as the sweep's
    base yet change nothing: an error, not a warning, because the sweep it would start is not the
    one asked for, and a warning scrolls away while hours of trials run.
    """
    from model.config import RunConfig
    for key, value in overrides.items():
        try:
            RunConfig().with_overrides({key: value})
        except ValueError as exc:
            raise SpaceError(f"override {key}={value}: {exc}") from None
    if "seed" in overrides:
        raise SpaceError(f"override seed={overrides['seed']} has no effect: every trial sets its own seed; "
                         f"use --seeds {overrides['seed']}")
    searched = {p.name for p in space.search.params} if space.search else set()
    for key, value in overrides.items():
        if key in searched:
            raise SpaceError(f"override {key}={value} has no effect: search.params.{key} of {space.path} sets "
                             f"{key} in every trial; edit search.params instead")
        setters = [v.name for v in space.variants if key in v.factors]
        if space.variants and len(setters) == len(space.variants) and space.base_from is None:
            raise SpaceError(f"override {key}={value} has no effect: every variant of {space.path} sets {key} "
                             f"itself ({', '.join(f'{v.name}: {v.factors[key]}' for v in space.variants)}); "
                             f"edit the variants in a copy of the space file, or drop the override")


def override_notes(space: Space, overrides: dict) -> list[str]:
    """Overrides that some (not all) variants set themselves: they reach only the others."""
    notes = []
    for key, value in overrides.items():
        setters = [v.name for v in space.variants if key in v.factors]
        if setters:
            notes.append(f"note: {key}={value} applies to {len(space.variants) - len(setters)} of "
                         f"{len(space.variants)} variants; {', '.join(setters)} set {key} themselves")
    return notes


def search_constants(search) -> dict:
    """One-value choices: fixed settings, not searched (Optuna would list them among its parameters)."""
    return {p.name: p.values[0] for p in search.params if p.kind == "choice" and len(p.values) == 1}


def plan(args: argparse.Namespace) -> tuple[Space, dict, str, list[str]]:
    """Everything checked before Ray starts: (space, base config, data spec, notes for the user)."""
    profile = args.profile if args.profile else (DEFAULT_PROFILE if args.space is None and not args.smoke_test else None)
    space = load_space(args.space or DEFAULT_SPACE, profile)
    overrides = parse_overrides(args.overrides)
    check_overrides(space, overrides)
    notes = override_notes(space, overrides)
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
        constants = search_constants(search)
        if len(constants) == len(search.params):
            raise SpaceError(f"{space.path}: search.params: every parameter has a single value; nothing to search")
        search = dataclasses.replace(search, params=tuple(p for p in search.params if p.name not in constants))
        base = {**base, **constants}
        notes += [f"note: search.params.{key} has one value ({value}): fixed, not searched"
                  for key, value in constants.items()]
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
    # The data must resolve, and every name must be one of its own (its metadata only: milliseconds).
    check_names(space, base, data_info(data))
    return space, base, data, notes


def data_info(spec: str) -> DataInfo:
    """The data's metadata (the driver must see the data: on a cluster, shared storage)."""
    try:
        return describe_data(spec)
    except FileNotFoundError as exc:
        raise SpaceError(f"--data {spec}: {exc}") from None
    except ValueError as exc:
        raise SpaceError(f"--data {spec}: {exc}") from None


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
    return {
        "name": space.name, "study": space.study, "table": space.table, "layout": space.layout, "data": data,
        "dataset": dataset, "domains": list(data_info(data).domain_names), "metrics": list(space.metrics),
        "seeds": list(space.seeds),
        "variants": [{"name": v.name, "factors": v.factors, "series": v.series, "x": v.x} for v in space.variants],
        "comparisons": space.comparisons(), "published_method": space.published,
        "hypotheses": space.hypothesis_records(), "seed_test": space.seed_test,
        "optuna_storage": journal, "optuna_study": space.name if space.search else None,
        "direction": "maximize" if space.search is None or space.search.mode == "max" else "minimize",
        "objective": space.search.metric if space.search else "val_auc_overall",
        "search_params": [p.name for p in space.search.params] if space.search else [],
        "seeds_per_trial": space.search.seeds_per_trial if space.search else None,
        "base": space.base, "storage": storage_note, "created_at": time.time(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        space, base, data, notes = plan(args)
        wandb_mode = wandb_log.resolve_mode(args.wandb)
        problem = wandb_log.credentials_problem(wandb_mode)
        if problem:
            raise SpaceError(problem)
    except (SpaceError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.USAGE
    with graceful_stop() as stop:
        try:
            return run_sweep(args, space, base, data, notes, wandb_mode, stop, sys.argv[1:] if argv is None else argv)
        except KeyboardInterrupt:  # a signal outside the Tune run (or a second one): nothing half-stored
            code = exit_codes.BY_SIGNAL.get(stop.signal or signal.SIGINT, exit_codes.SIGINT)
            print(f"stopped by {stop.name or 'SIGINT'}; finished rows are kept; run the same command to "
                  f"resume (exit {code})", file=sys.stderr)
            return code


def run_sweep(args: argparse.Namespace, space: Space, base: dict, data: str, notes: list[str], wandb_mode: str,
              stop, argv: list[str]) -> int:
    storage = args.storage if "://" in args.storage else str(Path(args.storage).expanduser().resolve())
    sweep_uri = join(storage, space.name)
    store = ResultsStore(sweep_uri)
    if space.base_from is not None:
        space = dataclasses.replace(space, variants=best_variants(space, storage))
    local_dir = resolve(sweep_uri)[1] if "://" not in sweep_uri else None
    if space.tuning is not None:  # tuned study: tune first (reusing finished runs), then replicate
        from sweeper import tuned
        space = tuned.run_tuning(space, base, data, sweep_uri, force=args.force, rerun_failed=args.rerun_failed,
                                 address=args.address, wandb_mode=wandb_mode)
    journal = None
    if space.search is not None:
        journal = f"{local_dir}/optuna.journal" if local_dir else str(Path(f"{space.name}-optuna.journal").resolve())
        Path(journal).parent.mkdir(parents=True, exist_ok=True)
    claims = Claims(sweep_uri)
    if space.search is not None:
        # Two Optuna drivers of one study would each run its whole remaining budget: one at a time.
        holder = claims.try_claim("search-driver")
        if holder is not None:
            print(f"error: sweep {space.name!r} at {sweep_uri} is being run by another driver ({holder.describe()}); "
                  f"wait for it, or stop it and run this again", file=sys.stderr)
            return exit_codes.BUSY
    store.write_text("sweep.json", json.dumps(sweep_metadata(space, data, storage, journal), indent=2, default=str))
    log_path = Path(f"{local_dir}/sweep.log") if local_dir else Path(f"{space.name}-sweep.log").resolve()

    what = (f"{len(space.variants)} variant(s) x {len(space.seeds)} seed(s)" if space.search is None else
            f"Optuna, {space.search.num_trials} trials x {space.search.seeds_per_trial} seed(s), "
            f"{len(space.search.params)} parameters")
    print(f"sweep {space.name!r}: {space.study}, {what}, on {data} ({space.path})")
    print(f"results: {sweep_uri}/results")
    print(f"log: {log_path} (Ray, Tune, W&B and Optuna output{'' if args.verbose else '; -v shows it here instead'})")
    for note in notes:
        print(note)
    sys.stdout.flush()
    with console.quiet(log_path, verbose=args.verbose) as out:
        return execute(args, space, base, data, sweep_uri, store, journal, wandb_mode, out, stop, claims, argv)


def execute(args: argparse.Namespace, space: Space, base: dict, data: str, sweep_uri: str, store: ResultsStore,
            journal: str | None, wandb_mode: str, out: console.Console, stop, claims: Claims, argv: list[str]) -> int:
    """The sweep after planning: trials, then the end summary, the report and the exit status."""
    started = time.time()
    info = data_info(data)
    if space.search is None:
        jobs, skipped = pending_jobs(space, base, data, sweep_uri, store, args, info)
        out.line(f"{len(jobs)} trials to run, {skipped} (cell, seed)s already stored")
        runnable = bool(jobs)
    else:
        completed = completed_search_trials(journal, space.name)
        remaining = max(space.search.num_trials - completed, 0) if not args.force else space.search.num_trials
        out.line(f"{remaining} search trials to run ({completed} of {space.search.num_trials} already complete)")
        runnable, jobs = remaining > 0, None
    with claims:
        if runnable:
            from sweeper import tune_runner  # Ray is imported only when there is work for it

            how = tune_runner.connect(args.address, with_dashboard=space.resources.workers > 0)
            stop.rearm()  # ray.init put its own SIGTERM handler in place of ours
            try:
                out.line(f"Ray: {how}; trials: "
                         f"{'in-process' if space.resources.workers == 0 else f'{space.resources.workers} Ray Train worker(s)'}")
                try:
                    cap = concurrency(space.resources, tune_runner.cluster_shape(local="started" in how),
                                      space.resources.max_concurrent)
                except ResourceError as exc:
                    out.warn(f"error: {space.path}: {exc}")
                    return exit_codes.USAGE
                if space.resources.workers > 0:
                    out.line(f"at most {cap} trial(s) at once: {trial_need(space.resources)}")
                template = None
                if space.search is not None:
                    template = Job(sweep=space.name, study="search", variant="", factors={}, base=base,
                                   seeds=space.seeds[:space.search.seeds_per_trial], data=data, sweep_uri=sweep_uri,
                                   objective=space.search.metric, domains=info.domain_names, bayes=info.has_truth,
                                   keep_models=space.keep_models)
                errors = tune_runner.run_tune(jobs=jobs, search=space.search, template_job=template,
                                              resources=space.resources, sweep_uri=sweep_uri, sweep_name=space.name,
                                              wandb_mode=wandb_mode, optuna_journal=journal,
                                              num_search_trials=remaining if space.search else 0, console=out,
                                              max_concurrent=cap, claims=claims, stop=stop)
                stored = tune_runner.store_trial_errors(errors, sweep_uri)
            finally:
                tune_runner.disconnect(how)
            if stored:
                out.line(f"{stored} seeds of crashed trials stored as failed")
    return finish(args, space, base, store, sweep_uri, journal, wandb_mode, started, stop, argv, out)


def wandb_summary(mode: str, sweep_name: str, sweep_uri: str) -> str:
    """Where the W&B runs are; offline runs are read back to check that every stream finished."""
    project = os.environ.get("WANDB_PROJECT", wandb_log.PROJECT)
    if mode == "online" or "://" in sweep_uri:
        return f"W&B ({mode}): project {project}, group {sweep_name}"
    wandb_dir = Path(resolve(sweep_uri)[1]) / "wandb"
    try:
        runs = wandb_log.offline_runs(wandb_dir)
        deadline = time.time() + 5  # a run's last records reach its file a moment after finish()
        while any(r.exit_code is None for r in runs) and time.time() < deadline:
            time.sleep(0.5)
            runs = wandb_log.offline_runs(wandb_dir)
    except Exception as exc:  # noqa: BLE001 - a summary line must not fail a finished sweep
        return f"W&B (offline): runs in {wandb_dir}/wandb (not read back: {type(exc).__name__}: {exc})"
    unfinished = [r.path.name for r in runs if r.exit_code is None]
    state = f", {len(unfinished)} not finished: {', '.join(unfinished[:3])}" if unfinished else ", all finished"
    return (f"W&B (offline): {len(runs)} runs{state}; upload with: "
            f"wandb sync {wandb_dir}/wandb/offline-run-*")


def finish(args, space: Space, base: dict, store: ResultsStore, sweep_uri: str, journal: str | None,
           wandb_mode: str, started: float, stop, argv: list[str], out: console.Console) -> int:
    """Count what is stored against what was planned, write the report, say it, pick the exit status."""
    frame = store.read()
    elapsed = time.time() - started
    results = f"{sweep_uri}/results"
    if space.search is None:
        planned = set(planned_keys(space, base))
        ok_keys, failed_keys = store.stored()
        n_ok, n_failed = len(planned & ok_keys), len(planned & failed_keys)
        n_missing = len(planned) - n_ok - n_failed
        summary = f"{n_ok} of {len(planned)} planned (cell, seed)s stored ok, {n_failed} failed, {n_missing} missing"
        complete = n_ok == len(planned) and n_ok > 0
    else:
        n_ok = int((frame["status"] == OK).sum()) if not frame.empty else 0
        n_failed = int((frame["status"] == FAILED).sum()) if not frame.empty else 0
        completed = completed_search_trials(journal, space.name)
        summary = (f"{min(completed, space.search.num_trials)} of {space.search.num_trials} search trials complete, "
                   f"{n_ok} ok rows, {n_failed} failed rows")
        complete = completed >= space.search.num_trials and n_failed == 0 and n_ok > 0
    partial = None
    if stop.signal:
        code = exit_codes.BY_SIGNAL[stop.signal]
        partial = f"partial: the sweep was stopped by {stop.name} ({summary})"
    else:
        code = exit_codes.OK if complete else exit_codes.FAILED
        if not complete:
            partial = f"incomplete: {summary}"
    if complete and not stop.signal:  # a finished sweep ends with its answer: the verdicts come last
        out.line(f"done in {elapsed:.0f} s: {summary} in {results}")
    if wandb_mode != "off":
        out.line(wandb_summary(wandb_mode, space.name, sweep_uri))
    if not args.no_report:
        write_report(sweep_uri, wandb_mode, out, partial)
    resume = shlex.join(["python", "sweeper/run.py", *argv])
    if stop.signal:  # an unfinished one ends with what is missing, how to resume and its exit status
        out.line(f"stopped by {stop.name} after {elapsed:.0f} s: {summary}; trials that had not finished stored "
                 f"nothing; resume with: {resume} (exit {code})")
    elif not complete:
        hint = " (--rerun-failed retries the failed ones)" if n_failed else ""
        out.line(f"incomplete after {elapsed:.0f} s: {summary}; the error column of {results} says why{hint} "
                 f"(exit {code})")
    return code


def planned_keys(space: Space, base: dict) -> dict[tuple[str, int], tuple[str, int]]:
    """Every (cell, seed) a replicate sweep plans, with its (variant, seed)."""
    from model.config import RunConfig
    out = {}
    for variant in space.variants:
        for seed in space.seeds:
            flat = RunConfig().with_overrides({**base, **variant.factors, "seed": seed}).flat()
            out[(cell_key(flat), seed)] = (variant.name, seed)
    return out


def pending_jobs(space: Space, base: dict, data: str, sweep_uri: str, store: ResultsStore,
                 args: argparse.Namespace, info: DataInfo) -> tuple[list[Job], int]:
    """One job per (variant, seed) not yet stored (ok; failed too unless --rerun-failed); with
    resources.seed_batch K, one job per (variant, group of up to K of its unstored seeds)."""
    done, failed = (set(), set()) if args.force else store.stored()
    if args.rerun_failed:
        failed = set()
    attempts = store.attempts()
    todo: dict[str, list[tuple[int, int]]] = {}  # variant -> [(seed, attempt)] in seed order
    skipped = 0
    for key, (variant_name, seed) in planned_keys(space, base).items():
        if key in done or key in failed:
            skipped += 1
            continue
        todo.setdefault(variant_name, []).append((seed, attempts.get(key, 0) + 1))
    jobs, size = [], space.resources.seed_batch
    for variant in space.variants:
        pending = todo.get(variant.name, [])
        for start in range(0, len(pending), size):
            group = pending[start:start + size]
            jobs.append(Job(sweep=space.name, study="replicate", variant=variant.name, factors=variant.factors,
                            base=base, seeds=tuple(s for s, _ in group), data=data, sweep_uri=sweep_uri,
                            attempts=tuple(a for _, a in group), domains=info.domain_names, bayes=info.has_truth,
                            keep_models=space.keep_models, seed_batch=size))
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


def write_report(sweep_uri: str, wandb_mode: str, out: console.Console, partial: str | None = None) -> None:
    if "://" in sweep_uri:
        out.line("report: fetch the sweep locally, then run: python -m sweeper.report DIR")
        return
    from sweeper.report import VERDICTS_TXT, write_report as render
    try:
        path = render(sweep_uri, wandb_mode=wandb_mode, partial=partial)
        out.line(f"report: {path / 'report.html'}")
        verdict_lines = (path / VERDICTS_TXT).read_text().splitlines() if (path / VERDICTS_TXT).is_file() else []
        if verdict_lines:  # the answer, as the sweep's last lines
            out.line("verdicts:")
            for line in verdict_lines:
                out.line(f"  {line}")
    except Exception as exc:  # noqa: BLE001 - the results are safe; a report bug must not hide that
        out.warn(f"report failed ({type(exc).__name__}: {exc}); results are intact; traceback in the sweep log; "
                 f"retry with: python -m sweeper.report {sweep_uri}")
        import traceback
        traceback.print_exc()  # to the sweep log


if __name__ == "__main__":
    sys.exit(main())
