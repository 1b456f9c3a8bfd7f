"""One training run: a plain loop (setup, epochs with early stopping, test with the best weights).

    python -m model.train [--config FILE] [--data synthetic:tiny] [key=value ...] [--smoke-test]
    python -m model.train seed_batch=3 [key=value ...]   # seeds seed..seed+2 as one stacked model
    python -m model.train --eval MODEL_FILE --data SPEC     # score a stored best-epoch model

A run can hand its state to a callback after every epoch (`on_state`) and continue from such a
state (`resume`): model/checkpoint.py.
"""
from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from typing import Callable

import torch
import torch.distributed as dist

from model.checkpoint import TrainState, load_artefact
from model.config import MEASUREMENT_KEYS, RunConfig, config_keys, load_config_file
from model.architectures import ARCHITECTURES
from model.layers import MultiEmbedding
from model.data import MultiDomainData, rows_per_epoch, shuffled_batches
from model.datasets import check_spec, load_data
from model.losses import aux_loss, task_loss
from model.probe import Probe
from model.run_parts import (RunResult, check_compile, check_run, compiled, model_for, pick_device,
                             predict_and_evaluate)

EpochCallback = Callable[[int, dict], None]
StateCallback = Callable[[TrainState], None]
# The smoke test: tiny data, one epoch, a small model. The sweep's --smoke-test uses it too.
SMOKE_OVERRIDES = {"epochs": 1, "expert_hidden": (32, 16), "tower_hidden": (8,), "batch_size": 2048,
                   "aux_rows": 256}


def train(config: RunConfig, data: MultiDomainData, *, device: str | torch.device = "cpu",
          on_epoch: EpochCallback | None = None, on_state: StateCallback | None = None,
          resume: TrainState | None = None, dtype: torch.dtype = torch.float32) -> RunResult:
    """Train one model; with torch.distributed initialised, run DDP with batches sharded by rank.

    on_state(state) gets the TrainState after every epoch; resume=state continues from one (made
    with the same config), ending with the metrics an uninterrupted run would have. dtype float64
    serves exactness checks (model/seed_batch.py's equivalence test)."""
    started = time.perf_counter()
    check_run(config, data)
    mcfg, tcfg = config.model, config.train
    device = torch.device(device)
    check_compile(tcfg.compile, device)
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    trained = {k: v for k, v in config.flat().items() if k not in MEASUREMENT_KEYS}
    if resume is not None and {k: v for k, v in resume.config.items() if k not in MEASUREMENT_KEYS} != trained:
        changed = sorted(k for k in {**resume.config, **trained}
                         if k not in MEASUREMENT_KEYS and resume.config.get(k) != trained.get(k))
        raise ValueError(f"cannot resume: the saved state was made with another config (differs in {changed})")

    # Setup: data on the device; init and shuffle randomness from separate generators.
    splits = {name: data.subset(name).to(device) for name in ("train", "val", "test")}
    torch.manual_seed(tcfg.seed)  # dropout; the weights are seeded per module from (seed, module path)
    model = model_for(config, data).to(device=device, dtype=dtype)
    shuffle_gen = torch.Generator().manual_seed(tcfg.seed + 1_000_003)
    embedding_ids = {id(p) for m in model.modules() if isinstance(m, MultiEmbedding) for p in m.parameters()}
    embedding_params = [p for p in model.parameters() if id(p) in embedding_ids]
    other_params = [p for p in model.parameters() if id(p) not in embedding_ids]
    optimizer = torch.optim.Adam([
        # Adam's coupled weight decay wd*w is the gradient of (wd/2)*||w||^2: the L2 term of the loss.
        {"params": embedding_params, "weight_decay": 2 * tcfg.embedding_l2},
        {"params": other_params, "weight_decay": 0.0},
    ], lr=tcfg.lr)
    step_model = model
    if distributed:
        # Per-domain modules run on every row (static shapes), so every parameter gets a gradient.
        # Batch statistics are per rank (no SyncBatchNorm: our norms are per model and per domain);
        # DDP broadcasts rank 0's running statistics, which evaluation then uses on every rank.
        step_model = torch.nn.parallel.DistributedDataParallel(model)
    if tcfg.compile:
        step_model = compiled(step_model)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tcfg.bf16)
    use_aux = mcfg.aux_loss != "none" and mcfg.alpha > 0
    sign = 1 if tcfg.monitor_mode == "max" else -1
    # Diagnostics are deterministic and use no random state, so they never change what is trained;
    # under torch.distributed every rank computes the same values (rank 0's are stored).
    diag_start = time.perf_counter()
    probe = Probe.for_run(data, config=mcfg, rows_per_domain=tcfg.diagnostics_rows, device=device) \
        if tcfg.diagnostics else None
    diagnostics_s = time.perf_counter() - diag_start if probe is not None else 0.0
    diagnostics_epochs: list[dict] = []

    # Epochs with early stopping on the monitored validation metric.
    history: list[dict] = []
    best_score, best_epoch, best_state, best_val = -float("inf"), 0, None, {}
    train_seconds, train_rows, elapsed_before, first_epoch = 0.0, 0, 0.0, 1
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        shuffle_gen.set_state(resume.shuffle_rng)
        torch.set_rng_state(resume.torch_rng)
        history = [dict(h) for h in resume.history]
        best_score, best_epoch, best_val = resume.best_score, resume.best_epoch, dict(resume.best_val)
        best_state = resume.best_state
        train_seconds, train_rows, elapsed_before = resume.train_seconds, resume.train_rows, resume.elapsed_s
        diagnostics_epochs = [dict(d) for d in resume.diagnostics_epochs]
        diagnostics_s += resume.diagnostics_s
        # A state saved at the epoch that ended the run (patience or the last epoch) trains no more.
        first_epoch = resume.epoch + 1 if resume.epoch - best_epoch < tcfg.patience else tcfg.epochs + 1
    train_split = splits["train"]
    epoch_rows = rows_per_epoch(len(train_split), tcfg.batch_size)
    for epoch in range(first_epoch, tcfg.epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)  # many steps: a float32 sum drifts
        num_steps = 0
        for idx in shuffled_batches(len(train_split), tcfg.batch_size, shuffle_gen, device, rank, world):
            batch = train_split.rows(idx)
            with autocast:
                out = step_model(batch.features, batch.domains)
                loss = task_loss(out.logits, batch.labels, batch.domains, data.num_domains, tcfg.task_loss)
                if use_aux:
                    loss = loss + mcfg.alpha * aux_loss(mcfg.aux_loss, out.expert_outputs, out.gates, mcfg.aux_rows)
                if out.penalty is not None:  # a method's own regulariser (AdaSparse's sparsity)
                    loss = loss + out.penalty
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()
            num_steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_train_s = time.perf_counter() - epoch_start
        train_seconds += epoch_train_s
        train_rows += epoch_rows
        mean_loss = float(loss_sum) / max(num_steps, 1)
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"training loss is {mean_loss} in epoch {epoch} "
                                     f"(alpha={mcfg.alpha}, aux_loss={mcfg.aux_loss!r}, lr={tcfg.lr})")

        val = predict_and_evaluate(model, "val", splits["val"], data.domain_names, tcfg.eval_batch_size, autocast)
        record = {"epoch": epoch, "train_loss": mean_loss, "epoch_train_s": epoch_train_s,
                  "samples_per_s": epoch_rows / epoch_train_s, **val}
        history.append(record)
        epoch_diagnostics = {}
        if probe is not None and tcfg.diagnostics_every and epoch % tcfg.diagnostics_every == 0:
            diag_start = time.perf_counter()
            epoch_diagnostics = probe.measure(model)[0]
            diagnostics_s += time.perf_counter() - diag_start
            diagnostics_epochs.append({"epoch": epoch, **epoch_diagnostics})
        improved = sign * val[tcfg.monitor] > best_score
        if improved:
            best_score, best_epoch, best_val = sign * val[tcfg.monitor], epoch, val
            best_state = copy.deepcopy(model.state_dict())
        if on_epoch is not None:
            on_epoch(epoch, {**record, **epoch_diagnostics})  # with this epoch's diagnostics (not in history)
        if on_state is not None:
            on_state(TrainState(
                epoch=epoch, model=model.state_dict(), optimizer=optimizer.state_dict(),
                shuffle_rng=shuffle_gen.get_state(), torch_rng=torch.get_rng_state(), best_score=best_score,
                best_epoch=best_epoch, best_state=best_state, best_val=best_val, train_seconds=train_seconds,
                train_rows=train_rows, elapsed_s=elapsed_before + time.perf_counter() - started,
                config=config.flat(), history=history, diagnostics_epochs=diagnostics_epochs,
                diagnostics_s=diagnostics_s))
        if epoch - best_epoch >= tcfg.patience:
            break

    if best_state is None:
        raise ValueError(f"monitor {tcfg.monitor!r} was NaN in every epoch (does a validation domain hold only "
                         f"one label?); choose another monitor, e.g. val_auc_overall")
    # Test with the best epoch's weights.
    model.load_state_dict(best_state)
    test = predict_and_evaluate(model, "test", splits["test"], data.domain_names, tcfg.eval_batch_size, autocast)
    diagnostics, spectra = {}, {}
    if probe is not None:
        diag_start = time.perf_counter()
        diagnostics, spectra = probe.measure(model)
        diagnostics_s += time.perf_counter() - diag_start
    return RunResult(
        metrics={**best_val, **test}, best_epoch=best_epoch, epochs_run=len(history),
        wall_time_s=elapsed_before + time.perf_counter() - started,
        samples_per_s=train_rows / max(train_seconds, 1e-9), history=history, best_state=best_state,
        resumed_from_epoch=resume.epoch if resume is not None else 0, diagnostics=diagnostics, spectra=spectra,
        diagnostics_epochs=diagnostics_epochs, diagnostics_s=diagnostics_s,
    )


def format_table(metrics: dict[str, float], domain_names: tuple[str, ...], split_name: str = "test",
                 overall: bool = True) -> str:
    """Per-domain AUC / gAUC (and the Bayes-optimal values when known) as a text table; overall
    False shows "-" on the overall row (single_domain: its domains' scores come from different models)."""
    has_bayes = f"{split_name}_bayesauc_overall" in metrics
    head = f"{'domain':<8} {'AUC':>8} {'gAUC':>8} {'logloss':>8}" + (f" {'bayesAUC':>9} {'bayesgAUC':>9}" if has_bayes else "")
    lines = [head, "-" * len(head)]
    for dom in (*domain_names, "overall"):
        if dom == "overall" and not overall:
            lines.append(f"{dom:<8} {'-':>8} {'-':>8} {'-':>8}")
            continue
        m = lambda name: metrics.get(f"{split_name}_{name}_{dom}", float("nan"))  # noqa: E731
        line = f"{dom:<8} {m('auc'):8.4f} {m('gauc'):8.4f} {m('logloss'):8.4f}"
        if has_bayes:
            line += f" {m('bayesauc'):9.4f} {m('bayesgauc'):9.4f}"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help=f"any of: {', '.join(config_keys())}; and seed_batch=K: train seeds seed..seed+K-1 "
                             f"together (model/seed_batch.py)")
    parser.add_argument("--config", help="YAML or JSON file of key: value settings (overrides win)")
    parser.add_argument("--data", help="synthetic:{tiny,small,kuairand}[:SEED] or parquet:FILE (default: "
                                        "synthetic:small; with --eval, the data the model was trained on)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, one epoch, small model")
    parser.add_argument("--eval", metavar="MODEL_FILE", help="score a stored best-epoch model (a sweep's "
                                                             "<sweep>/models/*.pt) on --data's val and test splits")
    args = parser.parse_args(argv)
    if args.eval:
        if args.overrides or args.config:
            parser.error("--eval takes the config stored with the model; drop key=value and --config")
        try:
            return evaluate_artefact(args.eval, args.data, pick_device(args.device))
        except (FileNotFoundError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    # Bad input is one line and exit 2, before any data is loaded where the input allows it.
    try:
        overrides = load_config_file(args.config) if args.config else {}
        for item in args.overrides:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"override {item!r} must look like key=value")
            overrides[key] = value
        seed_batch = overrides.pop("seed_batch", 1)  # how seeds run, not what a run is: no config key
        if not str(seed_batch).isdigit() or int(seed_batch) < 1:
            raise ValueError(f"seed_batch must be an integer >= 1, but got seed_batch={seed_batch!r}")
        seed_batch = int(seed_batch)
        data_spec = "synthetic:tiny" if args.smoke_test else (args.data or "synthetic:small")
        config = RunConfig().with_overrides({**(SMOKE_OVERRIDES if args.smoke_test else {}), **overrides})
        check_spec(data_spec)
        device = pick_device(args.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device}: no CUDA device is available here (try --device cpu)")
        check_compile(config.train.compile, device)
        data = load_data(data_spec)
        check_run(config, data)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"data {data.name}: {data.num_rows:,} rows, {data.num_fields} fields, domains {', '.join(data.domain_names)}")
    print(f"model {config.model}\ndevice {device}")
    if seed_batch > 1:
        return _train_seed_batch(config, data, seed_batch, device)
    result = train(config, data, device=device, on_epoch=lambda e, r: print(
        f"epoch {e:3d}  loss {r['train_loss']:.4f}  {config.train.monitor} {r[config.train.monitor]:.4f}  "
        f"{r['samples_per_s']:,.0f} samples/s", flush=True))
    print(f"\ntest metrics (best epoch {result.best_epoch} of {result.epochs_run}):")
    print(format_table(result.metrics, data.domain_names, overall=ARCHITECTURES[config.model.architecture].overall))
    print(f"\ntraining throughput {result.samples_per_s:,.0f} samples/s, wall time {result.wall_time_s:.1f} s")
    if result.diagnostics:
        print(format_diagnostics(result.diagnostics, data.domain_names, result.diagnostics_s))
    return 0


def _train_seed_batch(config: RunConfig, data: MultiDomainData, k: int, device: torch.device) -> int:
    from model.seed_batch import train_seeds  # torch.func, only here

    seeds = tuple(range(config.train.seed, config.train.seed + k))
    started = time.perf_counter()
    results = train_seeds(config, data, seeds, device=device, on_epoch=lambda seed, e, r: print(
        f"seed {seed} epoch {e:3d}  loss {r['train_loss']:.4f}  {config.train.monitor} {r[config.train.monitor]:.4f}",
        flush=True))
    failed = 0
    for seed, result in results.items():
        if isinstance(result, BaseException):
            print(f"\nseed {seed} failed: {type(result).__name__}: {result}")
            failed += 1
            continue
        print(f"\nseed {seed} test metrics (best epoch {result.best_epoch} of {result.epochs_run}):")
        print(format_table(result.metrics, data.domain_names, overall=ARCHITECTURES[config.model.architecture].overall))
    ok = [r for r in results.values() if not isinstance(r, BaseException)]
    rate = sum(r.samples_per_s for r in ok)
    print(f"\n{k} seeds together: {rate:,.0f} samples/s over all seeds, wall time {time.perf_counter() - started:.1f} s")
    return 1 if failed else 0


def format_diagnostics(scalars: dict[str, float], domain_names: tuple[str, ...], seconds: float) -> str:
    """The best epoch's headline diagnostics: IA per domain (embeddings, experts) and DI."""
    head = f"{'domain':<8} {'IA user':>8} {'IA item':>8} {'IA expert':>9}"
    lines = [f"\ndiagnostics at the best epoch ({seconds:.1f} s; IA = information abundance, DI = diversity index):",
             head, "-" * len(head)]
    for dom in (*domain_names, "overall"):
        suffix = f"_{dom}" if dom != "overall" else ""
        expert = f"{scalars.get(f'ia_expert_{dom}', math.nan):9.2f}" if dom != "overall" else f"{'-':>9}"
        lines.append(f"{dom:<8} {scalars.get(f'ia_user_id{suffix}', math.nan):8.2f} "
                     f"{scalars.get(f'ia_item_id{suffix}', math.nan):8.2f} {expert}")
    lines.append(f"DI mean over domain pairs: {scalars.get('di_mean', math.nan):.3f}")
    return "\n".join(lines)


def evaluate_artefact(path: str, data_spec: str | None, device: torch.device) -> int:
    """--eval: rebuild the stored model for the data, load its weights, score val and test."""
    artefact = load_artefact(path)
    data_spec = data_spec or artefact["data"]
    config = RunConfig().with_overrides({k: v for k, v in artefact["config"].items()})
    check_spec(data_spec)
    data = load_data(data_spec)
    for what, stored, have in (("vocabulary sizes", artefact["vocab_sizes"], list(data.vocab_sizes)),
                               ("domains", artefact["domain_names"], list(data.domain_names)),
                               ("fields", artefact["field_names"], list(data.field_names))):
        if stored != have:
            raise ValueError(f"{path} was trained on data with other {what} ({artefact['data']}: {stored}); "
                             f"{data_spec} has {have}")
    model = model_for(config, data).to(device)
    try:
        model.load_state_dict(artefact["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: its weights do not fit the model its config builds: {exc}") from None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.train.bf16)
    metrics = {}
    for split in ("val", "test"):
        metrics |= predict_and_evaluate(model, split, data.subset(split).to(device), data.domain_names,
                                        config.train.eval_batch_size, autocast)
    print(f"model {path} (best epoch {artefact['epoch']}), data {data_spec}: {data.num_rows:,} rows")
    print(format_table(metrics, data.domain_names, "test"))
    shared = [k for k in artefact["metrics"] if k in metrics and math.isfinite(metrics[k])]
    if shared and data_spec == artefact["data"]:
        drift = max(abs(metrics[k] - artefact["metrics"][k]) for k in shared)
        print(f"\nlargest difference from the metrics stored with the model: {drift:.2e} ({len(shared)} metrics)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
