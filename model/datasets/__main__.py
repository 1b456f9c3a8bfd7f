"""`python -m model.datasets prepare ...`: see model/datasets/cli.py."""
import sys

from model.datasets.cli import main

if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
