"""Cost of the mechanism diagnostics (model/diagnostics.py) against one training epoch, in one process.

Trains a default Crocodile (RunConfig()) for one epoch with model.train.train, then computes every
diagnostic once on a model of the same shape: the once-per-run setup (exposure counts of the user
and item ids, conflict users of every domain pair, from the train rows) and the per-call work
(embedding tables of the seen rows, IA and spectra, IA by frequency group, expert outputs on a fixed
sample of each domain's validation rows, IA per expert and domain, DI per domain pair). The cost of
the diagnostics does not depend on the weights, only on the shapes; the best of three calls is
reported next to the first (the machine may be shared).

    python benchmarks/diagnostics_cost.py [--data synthetic:small] [--per-domain 2048] [--smoke-test]
"""
from __future__ import annotations

import argparse
import time

import torch

from model.config import RunConfig
from model.architectures import build_model
from model.datasets import load_data
from model.diagnostics import (conflict_users_by_pair, crocodile_embedding_tables, crocodile_expert_outputs,
                               exposure_counts, gather_diagnostics, sample_rows)
from model.train import SMOKE_OVERRIDES, train

FIELDS = ("user_id", "item_id")


def diagnostics_once(model, data, per_domain: int) -> tuple[float, float, dict]:
    """(setup seconds, per-call seconds, scalars) of all diagnostics on data's train/val rows."""
    start = time.perf_counter()
    train_rows, val_rows = data.subset("train"), data.subset("val")
    fields = {name: data.field_names.index(name) for name in FIELDS}
    seen = {name: exposure_counts(train_rows.features[:, col]) for name, col in fields.items()}
    conflicts = conflict_users_by_pair(train_rows.users, train_rows.labels, train_rows.domains, data.domain_names)
    sample = sample_rows(val_rows.domains, data.num_domains, per_domain)
    setup_s = time.perf_counter() - start

    start = time.perf_counter()
    tables = crocodile_embedding_tables(model, fields, {name: ids for name, (ids, _) in seen.items()})
    outputs = crocodile_expert_outputs(model, val_rows.features, val_rows.domains, sample, data.domain_names)
    exposure = {name: seen["item_id"][1] for name in tables if name.startswith("item_id")}
    scalars, _ = gather_diagnostics(tables, outputs, row_users={d: val_rows.users[r] for d, r in
                                                                zip(data.domain_names, sample)},
                                    conflicts=conflicts, exposure=exposure)
    return setup_s, time.perf_counter() - start, scalars


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="synthetic:small")
    parser.add_argument("--per-domain", type=int, default=2048, help="validation rows per domain for expert outputs")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, the smoke-test model")
    args = parser.parse_args(argv)
    data = load_data("synthetic:tiny" if args.smoke_test else args.data)
    config = RunConfig().with_overrides({**(SMOKE_OVERRIDES if args.smoke_test else {}), "epochs": 1})
    result = train(config, data)
    epoch_s = result.history[0]["epoch_train_s"]
    torch.manual_seed(0)
    model = build_model(config.model, vocab_sizes=data.vocab_sizes, num_domains=data.num_domains,
                        prior_fields=data.prior_field_indices())
    runs = [diagnostics_once(model, data, args.per_domain) for _ in range(1 if args.smoke_test else 3)]
    setup_s, call_s = min(r[0] for r in runs), min(r[1] for r in runs)  # best of 3: the machine may be shared
    scalars = runs[0][2]
    print(f"data {data.name}, model {config.model}")
    print(f"  one training epoch: {epoch_s:.2f} s ({result.samples_per_s:,.0f} samples/s); "
          f"test AUC {result.metrics['test_auc_overall']:.4f} (Bayes {result.metrics['test_bayesauc_overall']:.4f})")
    print(f"  diagnostics (best of {len(runs)}): setup once per run {setup_s:.2f} s, one call {call_s:.2f} s "
          f"({len(scalars)} scalars) = {100 * call_s / epoch_s:.1f} % of an epoch per call; "
          f"first call {runs[0][1]:.2f} s")
    return {"epoch_s": epoch_s, "setup_s": setup_s, "call_s": call_s, "num_scalars": len(scalars),
            **{k: v for k, v in result.metrics.items() if k.startswith("test_auc_") or k.startswith("test_bayesauc_")}}


if __name__ == "__main__":
    main()
