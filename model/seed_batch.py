"""Seed-batched training: K seeds of one configuration train as one stacked model in one process.

    train_seeds(config, data, seeds=(0, 1, 2))   # -> {seed: RunResult or the exception it failed with}

Letters: K seeds, B batch rows, F fields, n rows of a split.

The K models' parameters and buffers are stacked on a leading seed axis (torch.func.stack_module_state)
and one step runs them all with vmap(functional_call). We chose this over seed axes inside our own
layers because it needs no change to any of the ten architectures (their layers already batch over
experts or domains; a second batch axis in each would double that code), and it is as fast: vmap
turns each layer's matmul into one batched matmul over K, which is what hand-batched weights
would do. Each seed keeps everything it has when it trains alone, so its metrics are the same:
- its init: each model is built from its own seed (per-module seeding, model/init.py);
- its data order: its own shuffle generator, the same batches as model/train.py's loop, gathered
  as (K, B) index batches;
- its Adam state: Adam is elementwise, so one Adam over stacked tensors is K independent Adams;
- its gradients: the step's loss is the sum of the K seeds' losses, and seed k's parameters only
  enter seed k's loss;
- its early stopping, best-epoch weights, test metrics and result, handed to on_seed_end as soon as
  the seed stops; a seed whose loss turns NaN fails alone (its slice goes NaN, the others do not).
The equality is exact up to rounding, shown in float64 (1e-9 on every metric). In float32 the
stacked matmuls round differently, and Adam turns rounding noise into full-size steps for weights
whose true gradient is ~0 (biases before a batch norm, ids seen once), so float32 seeds batched
and alone agree in distribution, not digit by digit: a sweep's rows depend on its seed_batch.
A stopped seed keeps being stepped (its slice is ignored) until the last seed stops: re-stacking
would change the step's shapes and recompile it. With dropout > 0 the K seeds draw different
masks (vmap randomness="different"); they are then valid seeds but not the sequential runs'.
"""
from __future__ import annotations

import copy
import math
import time
from typing import Callable

import torch
from torch.func import functional_call, stack_module_state, vmap

from model.config import RunConfig
from model.data import MultiDomainData, SplitTensors, rows_per_epoch, shuffled_batches
from model.layers import MultiEmbedding
from model.losses import at_least_float32, aux_loss, task_loss
from model.metrics import evaluate
from model.probe import Probe
from model.run_parts import RunResult, check_compile, check_run, compiled, model_for, predict_and_evaluate

SeedEpochCallback = Callable[[int, int, dict], None]  # (seed, epoch, record)
SeedEndCallback = Callable[[int, "RunResult | BaseException"], None]


def train_seeds(config: RunConfig, data: MultiDomainData, seeds: tuple[int, ...], *,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                on_epoch: SeedEpochCallback | None = None,
                on_seed_end: SeedEndCallback | None = None) -> dict[int, RunResult | BaseException]:
    """Train config for every seed at once; return {seed: RunResult, or the exception it failed with}.

    on_epoch(seed, epoch, record) gets each running seed's epoch record (as model.train.train's);
    on_seed_end(seed, result) is called once per seed, when it stops.
    """
    started = time.perf_counter()
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, but got seeds={tuple(seeds)}")
    check_run(config, data)
    tcfg, mcfg = config.train, config.model
    device = torch.device(device)
    check_compile(tcfg.compile, device)
    configs = [config.with_overrides({"seed": seed}) for seed in seeds]

    # Setup: the data once on the device; K models, each as if it trained alone, stacked.
    splits = {name: data.subset(name).to(device) for name in ("train", "val", "test")}
    models = [model_for(c, data).to(device=device, dtype=dtype) for c in configs]
    params, buffers = stack_module_state(models)  # name -> (K, ...)
    skeleton = copy.deepcopy(models[0]).to("meta")  # the architecture without weights, for functional_call
    state_keys = list(models[0].state_dict())
    embedding_names = {f"{prefix}.{name}" if prefix else name
                       for prefix, module in models[0].named_modules() if isinstance(module, MultiEmbedding)
                       for name, _ in module.named_parameters()}
    optimizer = torch.optim.Adam([
        # As model/train.py: Adam's coupled decay 2*l2*w is the gradient of the L2 term l2*||w||^2.
        {"params": [p for n, p in params.items() if n in embedding_names], "weight_decay": 2 * tcfg.embedding_l2},
        {"params": [p for n, p in params.items() if n not in embedding_names], "weight_decay": 0.0},
    ], lr=tcfg.lr)
    shuffle_gens = [torch.Generator().manual_seed(seed + 1_000_003) for seed in seeds]
    torch.manual_seed(seeds[0])  # dropout masks (different per seed under vmap)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=tcfg.bf16)

    step_losses = stacked_losses(skeleton, mcfg, data.num_domains, config.train.task_loss)
    if tcfg.compile:
        step_losses = compiled(step_losses)
    logits_of = vmap(lambda p, b, features, domains: functional_call(skeleton, (p, b), (features, domains)).logits,
                     in_dims=(0, 0, None, None), randomness="same")  # -> (K, n)

    # The mechanism diagnostics of model/train.py, per seed (one probe: its rows do not depend on the seed).
    diag_start = time.perf_counter()
    probe = Probe.for_run(data, config=mcfg, rows_per_domain=tcfg.diagnostics_rows, device=device) \
        if tcfg.diagnostics else None
    diagnostics_s = [time.perf_counter() - diag_start if probe is not None else 0.0] * len(seeds)
    diagnostics_epochs: list[list[dict]] = [[] for _ in seeds]

    train_split, sign, K = splits["train"], (1 if tcfg.monitor_mode == "max" else -1), len(seeds)
    epoch_rows = rows_per_epoch(len(train_split), tcfg.batch_size)
    running = list(range(K))
    histories: list[list[dict]] = [[] for _ in seeds]
    best = [{"score": -math.inf, "epoch": 0, "state": None, "val": {}} for _ in seeds]
    results: dict[int, RunResult | BaseException] = {}
    train_seconds = 0.0

    def finish(k: int, outcome: RunResult | BaseException) -> None:
        results[seeds[k]] = outcome
        running.remove(k)
        if on_seed_end is not None:
            on_seed_end(seeds[k], outcome)

    for epoch in range(1, tcfg.epochs + 1):
        skeleton.train()
        epoch_start = time.perf_counter()
        loss_sums = torch.zeros(K, device=device, dtype=torch.float64)
        num_steps = 0
        for batches in zip(*(shuffled_batches(len(train_split), tcfg.batch_size, g, device) for g in shuffle_gens)):
            idx = torch.stack(batches)  # (K, B)
            with autocast:
                losses = step_losses(params, buffers, train_split.features[idx], train_split.domains[idx],
                                     train_split.labels[idx])  # (K,)
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            loss_sums += losses.detach()
            num_steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        epoch_train_s = time.perf_counter() - epoch_start
        train_seconds += epoch_train_s
        mean_losses = (loss_sums / max(num_steps, 1)).tolist()  # the one host sync of the epoch's steps

        skeleton.eval()
        val_logits = _predict(logits_of, params, buffers, splits["val"], max(1, tcfg.eval_batch_size // K), autocast)
        for k in list(running):
            if not math.isfinite(mean_losses[k]):
                finish(k, FloatingPointError(f"training loss is {mean_losses[k]} in epoch {epoch} (alpha={mcfg.alpha}, "
                                             f"aux_loss={mcfg.aux_loss!r}, lr={tcfg.lr})"))
                continue
            val = evaluate("val", val_logits[k], splits["val"].labels, splits["val"].domains, splits["val"].users,
                           data.domain_names, splits["val"].truth)
            record = {"epoch": epoch, "train_loss": mean_losses[k], "epoch_train_s": epoch_train_s,
                      "samples_per_s": epoch_rows / epoch_train_s, **val}
            histories[k].append(record)
            if sign * val[tcfg.monitor] > best[k]["score"]:
                best[k] = {"score": sign * val[tcfg.monitor], "epoch": epoch, "val": val,
                           "state": {name: (params | buffers)[name][k].detach().clone() for name in state_keys}}
            epoch_diagnostics = {}
            if probe is not None and tcfg.diagnostics_every and epoch % tcfg.diagnostics_every == 0:
                diag_start = time.perf_counter()
                models[k].load_state_dict({name: (params | buffers)[name][k] for name in state_keys})
                epoch_diagnostics = probe.measure(models[k])[0]
                diagnostics_s[k] += time.perf_counter() - diag_start
                diagnostics_epochs[k].append({"epoch": epoch, **epoch_diagnostics})
            if on_epoch is not None:
                on_epoch(seeds[k], epoch, {**record, **epoch_diagnostics})
            if epoch - best[k]["epoch"] >= tcfg.patience or epoch == tcfg.epochs:
                outcome = _tested(models[k], best[k], histories[k], splits["test"], data, tcfg, autocast,
                                  started, train_seconds, epoch_rows)
                if probe is not None and isinstance(outcome, RunResult):
                    diag_start = time.perf_counter()
                    outcome.diagnostics, outcome.spectra = probe.measure(models[k])  # best weights loaded
                    outcome.diagnostics_epochs = diagnostics_epochs[k]
                    outcome.diagnostics_s = diagnostics_s[k] + time.perf_counter() - diag_start
                finish(k, outcome)
        if not running:
            break
    return {seed: results[seed] for seed in seeds}


def stacked_losses(skeleton: torch.nn.Module, mcfg, num_domains: int, task_loss_kind: str):
    """The per-seed training losses of stacked models: f(params, buffers, features (K, B, F),
    domains (K, B), labels (K, B)) -> (K,), params and buffers as stack_module_state gives them.
    task_loss_kind names the task loss (model.losses.TASK_LOSSES)."""
    use_aux = mcfg.aux_loss != "none" and mcfg.alpha > 0

    def seed_loss(p, b, features, domains, labels):
        out = functional_call(skeleton, (p, b), (features, domains))
        loss = task_loss(out.logits, labels, domains, num_domains, task_loss_kind)
        if use_aux:
            loss = loss + mcfg.alpha * aux_loss(mcfg.aux_loss, out.expert_outputs, out.gates, mcfg.aux_rows)
        if out.penalty is not None:
            loss = loss + out.penalty
        return loss

    return vmap(seed_loss, randomness="different" if mcfg.dropout > 0 else "error")


@torch.no_grad()
def _predict(logits_of, params: dict, buffers: dict, rows: SplitTensors, batch_size: int, autocast) -> torch.Tensor:
    """Logits (K, n) of every seed's model on all rows."""
    parts = []
    for start in range(0, len(rows), batch_size):
        with autocast:
            parts.append(at_least_float32(logits_of(params, buffers, rows.features[start:start + batch_size],
                                                    rows.domains[start:start + batch_size])))
    return torch.cat(parts, dim=1)  # (K, n)


def _tested(model: torch.nn.Module, best: dict, history: list[dict], test_rows: SplitTensors, data: MultiDomainData,
            tcfg, autocast, started: float, train_seconds: float, epoch_rows: int) -> RunResult | BaseException:
    """The seed's RunResult: its best epoch's weights loaded into its own model, scored on test."""
    if best["state"] is None:
        return ValueError(f"monitor {tcfg.monitor!r} was NaN in every epoch (does a validation domain hold only "
                          f"one label?); choose another monitor, e.g. val_auc_overall")
    model.load_state_dict(best["state"])
    test = predict_and_evaluate(model, "test", test_rows, data.domain_names, tcfg.eval_batch_size, autocast)
    return RunResult(metrics={**best["val"], **test}, best_epoch=best["epoch"], epochs_run=len(history),
                     wall_time_s=time.perf_counter() - started,
                     samples_per_s=epoch_rows * len(history) / max(train_seconds, 1e-9), history=history,
                     best_state=best["state"])
