"""Training throughput: our device-resident index-slice batches vs a DataLoader-style loop, and
today's static per-domain layers vs round 1's rows-grouped-by-domain forward.

The baseline is what common recsys libraries do: a per-sample Dataset returning one row, the
default collate stacking rows into a batch, then a copy to the device. All loops run in this
process on the same data, optimiser and batch sizes; the ratios are what matter:
  ours (norm=none) / DataLoader   input pipeline
  ours (norm=none) / grouped      the static per-domain layer against round 1's forward
  ours (default norm) / grouped   what the default normalisation costs

With --architectures: samples/s of every method of the model family instead (each with its
defaults, ME too where it allows it), today's Crocodile and round 1's grouped forward among them.

    python benchmarks/throughput.py [--data synthetic:small] [--device auto] [--compile] [--steps 30]
                                    [--batch-sizes 4096,32768] [--architectures]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader, Dataset

from model.config import RunConfig
from benchmarks.legacy_crocodile import GroupedCrocodile
from model.architectures import ARCHITECTURES, build_model
from model.data import shuffled_batches
from model.datasets import load_data
from model.losses import aux_loss, task_loss
from model.train import pick_device


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
    forward = torch.compile(model, dynamic=True) if compile_model else model

    def step(features, labels, domains):
        out = forward(features, domains)
        loss = task_loss(out.logits, labels, domains, data.num_domains)
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
        rows += features.shape[0]
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
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, 3 steps")
    args = parser.parse_args(argv)
    if args.batch_sizes is None:
        args.batch_sizes = "4096" if args.architectures else "4096,32768"
    if args.smoke_test:
        args.data, args.steps, args.batch_sizes = "synthetic:tiny", 3, "1024"
    device = pick_device(args.device)
    data = load_data(args.data)
    if args.architectures:
        return family_throughput(data, device, args)
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
    return results


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
