"""Prepare the paper's datasets: official (or processed) files -> the model's Parquet format.

  python -m model.datasets prepare kuairand1k --raw DIR --out DIR [--split random|time]
  python -m model.datasets prepare kuairand1k --merged FILE --out DIR
  python -m model.datasets prepare aliccp --raw DIR --out DIR [--fields 101,205,...] [--block-mb 32]
  python -m model.datasets prepare aliccp --processed DIR --out DIR
  common options: [--force] [--min-count 10] [--seed 0]

What each preparer does to the data: model/datasets/kuairand.py and aliccp.py; the output directory
(data.parquet + summary.json, written atomically): model/datasets/prepare.py. Load the result with
`--data kuairand1k:DIR` or `--data aliccp:DIR`.
"""
from __future__ import annotations

import argparse

from model.datasets import aliccp, kuairand
from model.datasets.prepare import print_summary


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(prog="python -m model.datasets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare", help="turn official/processed files into the model's Parquet format")
    psub = prep.add_subparsers(dest="dataset", required=True)

    def common(p):
        p.add_argument("--out", required=True, help="output directory (data.parquet + summary.json)")
        p.add_argument("--force", action="store_true", help="rebuild even if the output is up to date")
        p.add_argument("--seed", type=int, default=0, help="seed of the random split (default 0)")

    k = psub.add_parser("kuairand1k", help="KuaiRand-1K")
    src = k.add_mutually_exclusive_group(required=True)
    src.add_argument("--raw", help="directory with log_standard_*.csv, user_features*.csv, video_features_basic*.csv")
    src.add_argument("--merged", help="one CSV of log rows already joined with user/video features")
    common(k)
    k.add_argument("--split", choices=("random", "time"), default="random",
                   help="random: 80/10/10 per domain by --seed; time: by time_ms (raw layout only)")
    k.add_argument("--min-count", type=int, default=10, help="ids seen fewer times in train map to id 0")
    k.add_argument("--max-domains", type=int, default=5, help="keep the N largest tab values (default 5)")

    a = psub.add_parser("aliccp", help="Ali-CCP")
    src = a.add_mutually_exclusive_group(required=True)
    src.add_argument("--raw", help="directory with sample_skeleton_{train,test}.csv and "
                                   "common_features_{train,test}.csv")
    src.add_argument("--processed", help="directory with processed *train*.csv, [*val*.csv,] *test*.csv")
    common(a)
    a.add_argument("--min-count", type=int, default=None,
                   help="ids seen fewer times in train map to id 0 (raw default 10; processed default: "
                        "keep the ids as given, they are already filtered)")
    a.add_argument("--fields", default=None, help="comma-separated AliCCP field ids to use (default: all known)")
    a.add_argument("--block-mb", type=int, default=32, help="CSV is read in pieces of this many MB (default 32)")
    args = parser.parse_args(argv)

    if args.dataset == "kuairand1k":
        if args.raw:
            summary = kuairand.prepare_raw(args.raw, args.out, split=args.split, min_count=args.min_count,
                                           seed=args.seed, max_domains=args.max_domains, force=args.force)
        else:
            summary = kuairand.prepare_merged(args.merged, args.out, split=args.split, min_count=args.min_count,
                                              seed=args.seed, max_domains=args.max_domains, force=args.force)
    else:
        fields = tuple(f.strip() for f in args.fields.split(",") if f.strip()) if args.fields else None
        if args.raw:
            summary = aliccp.prepare_raw(args.raw, args.out, min_count=10 if args.min_count is None else args.min_count,
                                         seed=args.seed, fields=fields, force=args.force,
                                         block_size=args.block_mb << 20)
        else:
            summary = aliccp.prepare_processed(args.processed, args.out, min_count=args.min_count, seed=args.seed,
                                               fields=fields, force=args.force, block_size=args.block_mb << 20)
    print_summary(summary, args.out)
    return summary
