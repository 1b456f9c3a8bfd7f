"""Convergence: validation AUC per epoch for MMoE and Crocodile against the Bayes-optimal AUC.

Shows whether a budget (data size, epochs, batch size) is in the converged regime: each line is
one epoch with its validation AUC and the fraction of the way from 0.5 to the Bayes AUC it has
come. The shipped laptop profiles aim for >= 90 %.

    python benchmarks/convergence.py [--data synthetic:small] [--epochs 4] [key=value ...] [--smoke-test]
"""
from __future__ import annotations

import argparse
import sys

from model.config import RunConfig
from model.datasets import check_spec, load_data
from model.train import SMOKE_OVERRIDES, pick_device, train
from sweeper.verdicts import still_improving

VARIANTS = {
    "MMoE": {"embedding": "SE", "gating": "standard", "aux_loss": "none"},
    "Crocodile": {"embedding": "ME", "gating": "peg", "aux_loss": "cov"},
}


def bayes_fraction(auc: float, bayes_auc: float) -> float:
    """(auc - 0.5) / (bayes - 0.5): 1.0 = as good as the planted truth, 0.0 = chance."""
    return (auc - 0.5) / (bayes_auc - 0.5)


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(prog="python benchmarks/convergence.py", description=__doc__.split("\n")[0])
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config keys applied to both variants")
    parser.add_argument("--data", default="synthetic:small")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, 2 epochs, small model")
    args = parser.parse_args(argv)
    overrides = dict(item.split("=", 1) for item in args.overrides)
    if args.smoke_test:
        args.data, overrides = "synthetic:tiny", {**SMOKE_OVERRIDES, **overrides, "epochs": 2}
    base = RunConfig().with_overrides({"epochs": args.epochs, "patience": args.epochs, **overrides})
    check_spec(args.data)
    data = load_data(args.data)
    val_truth = data.subset("val").truth
    if val_truth is None:
        sys.exit(f"--data {args.data}: no Bayes-optimal scores (only synthetic data has them)")
    device = pick_device(args.device)
    print(f"data {data.name}, {base.train.epochs} epochs, batch {base.train.batch_size}, lr {base.train.lr}, "
          f"norm {base.model.norm}, device {device}")
    curves = {}
    for name, factors in VARIANTS.items():
        config = base.with_overrides(factors)
        bayes = {}

        def on_epoch(epoch: int, record: dict, name=name) -> None:
            bayes.setdefault("auc", record["val_bayesauc_overall"])
            fraction = bayes_fraction(record["val_auc_overall"], bayes["auc"])
            print(f"{name:<10} epoch {epoch:2d}  val AUC {record['val_auc_overall']:.4f}  "
                  f"Bayes {bayes['auc']:.4f}  {100 * fraction:5.1f} % of the gap  "
                  f"{record['samples_per_s']:,.0f} samples/s", flush=True)

        result = train(config, data, device=device, on_epoch=on_epoch)
        curves[name] = [h["val_auc_overall"] for h in result.history]
        improving = still_improving(result.best_epoch, result.epochs_run, base.train.epochs)  # the report's rule
        state = ("still improving at the last epoch: raise --epochs" if improving else
                 f"converged: best epoch {result.best_epoch} of {result.epochs_run} run")
        print(f"{name:<10} test AUC {result.metrics['test_auc_overall']:.4f}, "
              f"{100 * bayes_fraction(result.metrics['test_auc_overall'], result.metrics['test_bayesauc_overall']):.1f} "
              f"% of the Bayes gap ({state})")
    return curves


if __name__ == "__main__":
    main()
