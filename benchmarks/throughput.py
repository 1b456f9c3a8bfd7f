"""Training throughput: our device-resident index-slice batches vs a DataLoader-style loop, and
today's static per-domain layers vs round 1's rows-grouped-by-domain forward.

The baseline is what common recsys libraries do: a per-sample Dataset returning one row, the
default collate stacking rows into a batch, then a copy to the device. All loops run in this
process on the same data, optimiser and batch sizes; the ratios are what matter:
  ours (norm=none) / DataLoader   input pipeline
  ours (norm=none) / grouped      the static per-domain layer against round 1's forward
  ours (default norm) / grouped   what the default normalisation costs

Then the seed-batching table (model/seed_batch.py), default Crocodile, per batch size: the
DataLoader loop, our eager step, our compiled step (CUDA graphs: on a GPU, or on CPU with
--compile), and K seeds as one stacked model for each K of --seed-batches (aggregate samples/s over
the K seeds), each as a ratio to the DataLoader loop. K seeds stacked against our eager step is the
stacked run against K runs one after another.

With --architectures: samples/s of every method of the model family instead (each with its
defaults, ME too where it allows it), today's Crocodile and round 1's grouped forward among them.

    python benchmarks/throughput.py [--data synthetic:small] [--device auto] [--compile] [--steps 30]
                                    [--batch-sizes 4096,32768] [--seed-batches 1,3,6] [--architectures]
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: this checkout's root, for benchmarks.legacy_crocodile
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.func import stack_module_state  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from model.config import RunConfig  # noqa: E402
from benchmarks.legacy_crocodile import GroupedCrocodile  # noqa: E402
from model.architectures import ARCHITECTURES, build_model  # noqa: E402
from model.data import shuffled_batches  # noqa: E402
from model.datasets import load_data  # noqa: E402
from model.losses import aux_loss, task_loss  # noqa: E402
from model.seed_batch import stacked_losses  # noqa: E402
from model.train import compiled, pick_device  # noqa: E402


class RowDataset(Dataset):
    """One sample per __getitem__, as the baseline libraries do."""

    def __init__(self, features, labels, domains):
        self.features, self.labels, self.domains = features, labels, domains

    def __len__(self):
        return self.features.shape[0]

    def __getitem__(self, i):
        return {"features": self.features[i], "label": self.labels[i], "domain": self.domains[i]}


def make_step(config, data, device, compile_model, grouped: bool = False):
    torch.manual_seed(0)
    m = config.model
    if grouped:
        model = GroupedCrocodile(vocab_sizes=data.vocab_sizes, num_domains=data.num_domains,
                                 prior_fields=data.prior_field_indices(), num_embeddings=m.num_embeddings,
                                 embedding_dim=m.embedding_dim, expert_hidden=m.expert_hidden,
                                 tower_hidden=m.tower_hidden, gating=m.gating).to(device)
    else:
        model = build_model(m, vocab_sizes=data.vocab_sizes, num_domains=data.num_domains,
                            prior_fields=data.prior_field_indices() if m.uses_prior else ()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    forward = compiled(model) if compile_model else model

    def step(features, labels, domains):
        out = forward(features, domains)
        loss = task_loss(out.logits, labels, domains, data.num_domains, config.train.task_loss)
        if m.aux_loss != "none":
            loss = loss + m.alpha * aux_loss(m.aux_loss, out.expert_outputs, out.gates, m.aux_rows)
        if out.penalty is not None:
            loss = loss + out.penalty
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def timed(batches, step, device, num_steps: int, warmup: int = 3) -> float:
    """Samples/s over num_steps batches after warmup batches."""
    rows, start = 0, None
    for i, (features, labels, domains) in enumerate(batches):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, rows = time.perf_counter(), 0
        step(features, labels, domains)
        rows += features.shape[:-1].numel()  # B rows, or K*B for stacked seeds
        if i + 1 == warmup + num_steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return rows / (time.perf_counter() - start)


def ours(train, batch_size, device):
    gen = torch.Generator().manual_seed(0)
    while True:
        for idx in shuffled_batches(len(train), batch_size, gen, device):
            yield train.features[idx], train.labels[idx], train.domains[idx]


def baseline(train_cpu, batch_size, device):
    loader = DataLoader(RowDataset(train_cpu.features, train_cpu.labels, train_cpu.domains),
                        batch_size=batch_size, shuffle=True, drop_last=True)
    while True:
        for batch in loader:
            yield (batch["features"].to(device, non_blocking=True), batch["label"].to(device, non_blocking=True),
                   batch["domain"].to(device, non_blocking=True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="synthetic:small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-sizes", default=None, help="default 4096,32768 (4096 with --architectures)")
    parser.add_argument("--architectures", action="store_true", help="samples/s of every method of the family")
    parser.add_argument("--seed-batches", default="1,3,6", help="K values of the seed-batching table")
    parser.add_argument("--json", metavar="PATH", help="also write the samples/s as JSON (benchmarks/gpu_suite.sh)")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, 3 steps")
    args = parser.parse_args(argv)
    if args.batch_sizes is None:
        args.batch_sizes = "4096" if args.architectures else "4096,32768"
    if args.smoke_test:
        args.data, args.steps, args.batch_sizes, args.seed_batches = "synthetic:tiny", 3, "1024", "1,2"
    device = pick_device(args.device)
    data = load_data(args.data)
    if args.architectures:
        return _saved(family_throughput(data, device, args), args, device)
    config = RunConfig()
    train_cpu = data.subset("train")
    train_dev = data.to(device).subset("train")
    print(f"data {data.name} ({len(train_cpu):,} train rows), device {device}, compile={args.compile}, "
          f"model {config.model}")
    plain = config.with_overrides({"norm": "none"})
    print(f"{'batch':>7} {'ours norm=none':>15} {'ours norm=' + config.model.norm:>16} {'grouped (round 1)':>18} "
          f"{'DataLoader':>11}   ratios: vs DataLoader, none/grouped, default/grouped  (samples/s)")
    results = {}
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        fast = timed(ours(train_dev, batch_size, device), make_step(plain, data, device, args.compile), device,
                     args.steps)
        normed = timed(ours(train_dev, batch_size, device), make_step(config, data, device, args.compile), device,
                       args.steps)
        grouped = timed(ours(train_dev, batch_size, device),
                        make_step(plain, data, device, args.compile, grouped=True), device, args.steps)
        slow = timed(baseline(train_cpu, batch_size, device), make_step(plain, data, device, args.compile), device,
                     max(args.steps // 3, 2))
        results[batch_size] = {"ours": fast, "ours_default_norm": normed, "grouped": grouped, "dataloader": slow}
        print(f"{batch_size:>7} {fast:>15,.0f} {normed:>16,.0f} {grouped:>18,.0f} {slow:>11,.0f}   "
              f"{fast / slow:.1f}x, {fast / grouped:.2f}x, {normed / grouped:.2f}x", flush=True)
    results["seed_batching"] = seed_batch_throughput(data, train_cpu, train_dev, device, args)
    return _saved(results, args, device)


def _saved(results: dict, args, device) -> dict:
    if args.json:
        import json

        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        payload = {"data": args.data, "device": name, "threads": torch.get_num_threads(), "steps": args.steps,
                   "samples_per_s": {str(k): v for k, v in results.items()}}
        with open(args.json, "w") as f:
            json.dump(payload, f, indent=1)
    return results


def make_seed_batch_step(config, data, device, k: int, compile_step: bool):
    """One training step of k stacked Crocodiles (model/seed_batch.py), (K, B) batches."""
    models = [build_model(config.model, vocab_sizes=data.vocab_sizes, num_domains=data.num_domains,
                          prior_fields=data.prior_field_indices() if config.model.uses_prior else (), seed=s).to(device)
              for s in range(k)]
    params, buffers = stack_module_state(models)
    losses_of = stacked_losses(copy.deepcopy(models[0]).to("meta"), config.model, data.num_domains,
                               config.train.task_loss)
    losses_of = compiled(losses_of) if compile_step else losses_of
    optimizer = torch.optim.Adam(list(params.values()), lr=1e-3)

    def step(features, labels, domains):
        losses = losses_of(params, buffers, features, domains, labels)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()

    return step


def stacked(train, batch_size, device, k: int):
    """(K, B) batches: each seed its own shuffle, as in model/seed_batch.py."""
    gens = [torch.Generator().manual_seed(s) for s in range(k)]
    while True:
        for batches in zip(*(shuffled_batches(len(train), batch_size, g, device) for g in gens)):
            idx = torch.stack(batches)  # (K, B)
            yield train.features[idx], train.labels[idx], train.domains[idx]


def seed_batch_throughput(data, train_cpu, train_dev, device, args) -> dict[int, dict[str, float]]:
    """samples/s of the DataLoader loop, our eager and compiled steps, and K stacked seeds (aggregate)."""
    config = RunConfig()
    with_compile = device.type == "cuda" or args.compile
    ks = [int(k) for k in args.seed_batches.split(",")]
    print(f"\nseed batching, model {config.model.architecture} defaults, device {device} (samples/s; ratio to DataLoader)")
    print(f"{'batch':>7} {'DataLoader':>11} {'eager':>16} {'compiled':>16}" + "".join(f" {f'K={k}':>16}" for k in ks))
    out = {}
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        row = {"dataloader": timed(baseline(train_cpu, batch_size, device), make_step(config, data, device, False),
                                   device, max(args.steps // 3, 2))}
        row["eager"] = timed(ours(train_dev, batch_size, device), make_step(config, data, device, False), device,
                             args.steps)
        if with_compile:
            row["compiled"] = timed(ours(train_dev, batch_size, device), make_step(config, data, device, True),
                                    device, args.steps, warmup=5)
        for k in ks:
            row[f"seed_batch_{k}"] = timed(stacked(train_dev, batch_size, device, k),
                         make_seed_batch_step(config, data, device, k, with_compile), device, args.steps,
                         warmup=5 if with_compile else 3)  # samples/s over all K seeds
        out[batch_size] = row
        cells = [row["eager"], row.get("compiled")] + [row[f"seed_batch_{k}"] for k in ks]
        base = row["dataloader"]
        shown = ["-" if v is None else f"{v:,.0f} ({v / base:.1f}x)" for v in cells]
        print(f"{batch_size:>7} {base:>11,.0f}" + "".join(f" {c:>16}" for c in shown), flush=True)
    last = ks[-1]
    for batch_size, row in out.items():
        print(f"batch {batch_size}: K={last} stacked / {last} runs one after another = "
              f"{row[f'seed_batch_{last}'] / row['eager']:.2f}x" +
              (f"; compiled / eager = {row['compiled'] / row['eager']:.2f}x" if "compiled" in row else ""))
    return out


def family_throughput(data, device, args) -> dict[str, dict[int, float]]:
    """Training samples/s of every architecture (its defaults; ME too where allowed) per batch size."""
    train_dev = data.to(device).subset("train")
    print(f"data {data.name} ({len(train_dev):,} train rows), device {device}, compile={args.compile}, "
          f"threads {torch.get_num_threads()}; each method with its defaults (README: the methods table)")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(f"{'method':<22}" + "".join(f" {f'batch {b}':>12}" for b in batch_sizes) + "   (samples/s)")
    results = {}
    rows = [(name, embedding) for name, arch in ARCHITECTURES.items() for embedding in arch.embeddings]
    for name, embedding in rows + [("crocodile (round 1)", "ME")]:
        grouped = name == "crocodile (round 1)"
        keys = {"architecture": "crocodile" if grouped else name, "embedding": embedding}
        if name == "mmoe" and embedding == "ME":
            keys["num_embeddings"] = max(RunConfig().model.num_embeddings, data.num_domains)  # a set per domain
        config = RunConfig().with_overrides(keys)
        if grouped:  # round 1 had no normalisation
            config = config.with_overrides({"norm": "none"})
        label = name if grouped or len(ARCHITECTURES[name].embeddings) == 1 else f"{name} {embedding}"
        results[label] = {b: timed(ours(train_dev, b, device), make_step(config, data, device, args.compile,
                                                                          grouped=grouped), device, args.steps)
                          for b in batch_sizes}
        print(f"{label:<22}" + "".join(f" {results[label][b]:>12,.0f}" for b in batch_sizes), flush=True)
    return results


if __name__ == "__main__":
    main()
