"""Sec. 5.6's claim: CovLoss computed on 32 sampled rows has the same norm as on 1024 (p > 0.1).

    python -m model.covloss_sampling [--data synthetic:small] [--epochs 1] [--rows 32,1024] [key=value ...]
                                     [--smoke-test]

One model trains as model.train does (same init and shuffle seeding, eq. 7 loss, Adam, embedding
L2). At every step whose batch has at least max(rows) rows, the CovLoss (model/losses.py cov_loss,
our 1/B-normalised form) of the detached expert outputs is computed on the batch's first r rows for
each r in rows; batches are a uniform shuffle, so the first r rows are a uniform sample, nested as
in training with aux_rows = r. Over the steps, the pairs (L_32, L_1024) are compared by a paired
t-test and a Wilcoxon signed-rank test of L_32 - L_1024 (each step's rows are fresh, so the
differences are close to independent even though both series drift with training).

Two systematic effects pull apart: sampling noise only adds to the L1 norm of a cross-covariance
(more for 32 rows), while centring on the subset's own mean and dividing by r (not r - 1) shrinks
the estimate by (r - 1) / r in expectation (31/32 for 32 rows). On synthetic:small (default
Crocodile, one epoch, 196 steps) the shrinkage won: L_32 / L_1024 = 0.963, paired t p = 0.016,
Wilcoxon p = 0.051, so the paper's claim did not hold there. Whatever the test says is reported as it is.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.stats
import torch

from model.config import RunConfig, config_keys
from model.architectures import build_model
from model.data import MultiDomainData, shuffled_batches
from model.datasets import check_spec, load_data
from model.losses import aux_loss, cov_loss, task_loss

P_THRESHOLD = 0.1  # the paper: "no significant difference (p-value > 0.1)"
SMOKE_OVERRIDES = {"expert_hidden": (32, 16), "tower_hidden": (8,), "batch_size": 1024}


def covloss_norms(outputs: torch.Tensor, rows: tuple[int, ...]) -> dict[int, float]:
    """CovLoss of expert outputs (M, B, D) on their first r rows, for each r in rows (r <= B)."""
    if max(rows) > outputs.shape[1]:
        raise ValueError(f"rows {max(rows)} exceed the batch's {outputs.shape[1]} rows")
    return {r: float(cov_loss(outputs[:, :r].float())) for r in rows}


@dataclass(frozen=True)
class NormTrace:
    steps: list[int]  # global step of each recorded batch
    norms: dict[int, list[float]]  # rows -> CovLoss per recorded step


def track_covloss_norms(config: RunConfig, data: MultiDomainData, *, rows: tuple[int, ...] = (32, 1024),
                        epochs: int = 1, device: str | torch.device = "cpu") -> NormTrace:
    """Train for `epochs` (no early stopping) and record covloss_norms at every full-size batch."""
    if min(rows) < 2:
        raise ValueError(f"rows must be >= 2 (a covariance needs two rows), but got rows={rows}")
    if max(rows) > config.train.batch_size:
        raise ValueError(f"rows {max(rows)} exceed batch_size={config.train.batch_size}")
    mcfg, tcfg = config.model, config.train
    device = torch.device(device)
    train_rows = data.subset("train").to(device)
    torch.manual_seed(tcfg.seed)  # the same init and batch order as model.train.train
    model = build_model(mcfg, vocab_sizes=data.vocab_sizes, num_domains=data.num_domains,
                        prior_fields=data.prior_field_indices() if mcfg.uses_prior else (), seed=tcfg.seed).to(device)
    shuffle_gen = torch.Generator().manual_seed(tcfg.seed + 1_000_003)
    embedding_params = [p for name, p in model.named_parameters() if "embedding" in name]
    other_params = [p for name, p in model.named_parameters() if "embedding" not in name]
    optimizer = torch.optim.Adam([{"params": embedding_params, "weight_decay": 2 * tcfg.embedding_l2},
                                  {"params": other_params, "weight_decay": 0.0}], lr=tcfg.lr)
    use_aux = mcfg.aux_loss != "none" and mcfg.alpha > 0
    steps, norms, step = [], {r: [] for r in rows}, 0
    model.train()
    for _ in range(epochs):
        for idx in shuffled_batches(len(train_rows), tcfg.batch_size, shuffle_gen, device):
            batch = train_rows.rows(idx)
            out = model(batch.features, batch.domains)
            loss = task_loss(out.logits, batch.labels, batch.domains, data.num_domains, tcfg.task_loss)
            if use_aux:
                loss = loss + mcfg.alpha * aux_loss(mcfg.aux_loss, out.expert_outputs, out.gates, mcfg.aux_rows)
            if len(idx) >= max(rows):
                for r, value in covloss_norms(out.expert_outputs.detach(), rows).items():
                    norms[r].append(value)
                steps.append(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return NormTrace(steps=steps, norms=norms)


@dataclass(frozen=True)
class NormComparison:
    n: int
    mean_small: float
    mean_large: float
    mean_diff: float  # small - large
    ratio: float  # mean_small / mean_large
    t_p: float  # paired t-test
    wilcoxon_p: float  # Wilcoxon signed-rank test
    same: bool  # both p > P_THRESHOLD: "no significant difference", the paper's claim

    def verdict(self) -> str:
        if self.same:
            return f"no significant difference (both p > {P_THRESHOLD}): the paper's claim holds here"
        return f"significant difference (p <= {P_THRESHOLD}): the paper's claim does not hold here"


def compare_norms(small: list[float], large: list[float]) -> NormComparison:
    """Paired comparison of CovLoss on few rows (small) vs many rows (large) over the same batches."""
    x, y = np.asarray(small, np.float64), np.asarray(large, np.float64)
    if x.shape != y.shape or len(x) < 2:
        raise ValueError(f"need two equal-length series of at least 2 values, got {len(x)} and {len(y)}")
    diff = x - y
    if not diff.any():  # identical series: no difference at all (scipy would divide 0 by 0)
        t_p = w_p = 1.0
    elif np.all(diff == diff[0]):  # a constant non-zero difference: t is infinite
        t_p, w_p = 0.0, float(scipy.stats.wilcoxon(diff).pvalue)
    else:
        t_p = float(scipy.stats.ttest_rel(x, y).pvalue)
        w_p = float(scipy.stats.wilcoxon(x, y).pvalue)
    mean_large = float(y.mean())
    return NormComparison(n=len(x), mean_small=float(x.mean()), mean_large=mean_large, mean_diff=float(diff.mean()),
                          ratio=float(x.mean()) / mean_large if mean_large else math.nan, t_p=t_p, wilcoxon_p=w_p,
                          same=t_p > P_THRESHOLD and w_p > P_THRESHOLD)


def comparison_record(result: NormComparison, rows: tuple[int, int], data: str, epochs: int) -> dict:
    """The JSON form of a comparison (sweeper.paper_claims reads it): the numbers, the rows and the data."""
    return {"data": data, "rows": list(rows), "epochs": epochs, "p_threshold": P_THRESHOLD, **asdict(result)}


def main(argv: list[str] | None = None) -> NormComparison:
    parser = argparse.ArgumentParser(prog="python -m model.covloss_sampling", description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=f"any of: {', '.join(config_keys())}")
    parser.add_argument("--data", default="synthetic:small")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--rows", default="32,1024", help="two row counts: few,many (default 32,1024)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, a small model, rows 32,1024, 1 epoch")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the result as JSON (the report's claims section reads "
                             "<sweep>/covloss_sampling.json)")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"override {item!r} must look like key=value")
        overrides[key] = value
    rows = tuple(int(r) for r in args.rows.split(","))
    if len(rows) != 2 or not rows[0] < rows[1]:
        parser.error(f"--rows needs two increasing row counts like 32,1024, got {args.rows!r}")
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    data_spec = "synthetic:tiny" if args.smoke_test else args.data
    config = RunConfig().with_overrides({**(SMOKE_OVERRIDES if args.smoke_test else {}), **overrides})
    check_spec(data_spec)
    data = load_data(data_spec)
    trace = track_covloss_norms(config, data, rows=rows, epochs=args.epochs, device=args.device)
    result = compare_norms(trace.norms[rows[0]], trace.norms[rows[1]])
    print(f"data {data.name}, model {config.model}\nCovLoss over {result.n} training steps, same batches:")
    print(f"  {rows[0]:>5} rows: mean {result.mean_small:.6g}\n  {rows[1]:>5} rows: mean {result.mean_large:.6g}")
    print(f"  difference {result.mean_diff:.6g} (ratio {result.ratio:.3f}); paired t p = {result.t_p:.3g}, "
          f"Wilcoxon p = {result.wilcoxon_p:.3g}")
    print(f"  {result.verdict()}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(comparison_record(result, rows, data.name, args.epochs), indent=2) + "\n")
        print(f"  written to {args.json}")
    return result


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
