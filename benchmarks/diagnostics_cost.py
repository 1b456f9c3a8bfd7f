"""Cost of the mechanism diagnostics (model/probe.py) against one training epoch, in one process.

Trains a default Crocodile (RunConfig(), diagnostics off) for one epoch with model.train.train, then
builds the run's Probe (once per run: seen ids and exposure counts, per-domain seen ids, conflict
users of every domain pair from the train rows, the validation sample) and calls probe.measure()
on a model of the same shape (embedding tables of the seen rows, IA and spectra per set, per domain
and per frequency group, expert outputs on diagnostics_rows validation rows per domain, IA per
expert and domain, DI per domain pair). The cost does not depend on the weights, only on the
shapes; the best of three calls is reported next to the first (the machine may be shared).

A run with the default diagnostics_every=0 pays setup + one call; diagnostics_every=1 pays one call
per epoch more.

    python benchmarks/diagnostics_cost.py [--data synthetic:small] [--per-domain 2048] [--smoke-test]
"""
from __future__ import annotations

import argparse
import time

from model.config import RunConfig
from model.datasets import load_data
from model.probe import Probe
from model.train import SMOKE_OVERRIDES, model_for, train


def main(argv=None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="synthetic:small")
    parser.add_argument("--per-domain", type=int, default=2048, help="validation rows per domain for expert outputs")
    parser.add_argument("--smoke-test", action="store_true", help="tiny data, the smoke-test model")
    args = parser.parse_args(argv)
    data = load_data("synthetic:tiny" if args.smoke_test else args.data)
    config = RunConfig().with_overrides({**(SMOKE_OVERRIDES if args.smoke_test else {}), "epochs": 1,
                                         "diagnostics": False, "diagnostics_rows": args.per_domain})
    result = train(config, data)
    epoch_s = result.history[0]["epoch_train_s"]
    model = model_for(config, data)
    start = time.perf_counter()
    probe = Probe.for_run(data, config=config.model, rows_per_domain=config.train.diagnostics_rows)
    setup_s = time.perf_counter() - start
    calls = []
    for _ in range(1 if args.smoke_test else 3):
        start = time.perf_counter()
        scalars, spectra = probe.measure(model)
        calls.append(time.perf_counter() - start)
    call_s = min(calls)  # best of 3: the machine may be shared
    finite = sum(v == v for v in scalars.values())
    print(f"data {data.name}, model {config.model}")
    print(f"  one training epoch: {epoch_s:.2f} s ({result.samples_per_s:,.0f} samples/s); "
          f"test AUC {result.metrics['test_auc_overall']:.4f} (Bayes {result.metrics['test_bayesauc_overall']:.4f})")
    print(f"  diagnostics: setup once per run {setup_s:.2f} s, one measure() call {call_s:.2f} s (best of "
          f"{len(calls)}, first {calls[0]:.2f} s; {len(scalars)} columns, {finite} applicable, {len(spectra)} spectra)")
    print(f"  = {100 * call_s / epoch_s:.1f} % of an epoch per call; a default run (best epoch only) adds "
          f"{100 * (setup_s + call_s) / epoch_s:.1f} % of one epoch in all")
    return {"epoch_s": epoch_s, "setup_s": setup_s, "call_s": call_s, "num_scalars": len(scalars),
            **{k: v for k, v in result.metrics.items() if k.startswith("test_auc_") or k.startswith("test_bayesauc_")}}


if __name__ == "__main__":
    main()
