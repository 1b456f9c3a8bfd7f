"""Exit statuses of `sweeper/run.py`, in one place (the README's "Exit status" section lists them).

0 means every planned (cell, seed) of the sweep is stored ok, whether it ran now or earlier.
Anything else means the results are not complete: the last line printed says why.
"""
from __future__ import annotations

import signal

OK = 0  # every planned (cell, seed) stored ok (search: every planned trial complete, no failed row)
# 1 is Python's own status for an uncaught exception: a bug, never a planned outcome.
USAGE = 2  # bad input caught by the pre-flight (space file, overrides, data spec, names, resources)
FAILED = 3  # some planned (cell, seed) failed or is missing (a sweep with 0 ok rows always ends here)
BUSY = 4  # another live driver holds this search sweep (replicate sweeps share their cells instead)
SIGINT = 128 + signal.SIGINT  # 130: stopped by Ctrl-C; finished rows are kept, rerun to resume
SIGTERM = 128 + signal.SIGTERM  # 143: stopped by SIGTERM (e.g. a scheduler); same as SIGINT

BY_SIGNAL = {signal.SIGINT: SIGINT, signal.SIGTERM: SIGTERM}
MEANING = {OK: "complete", USAGE: "bad input (nothing ran)", FAILED: "incomplete: some (cell, seed)s failed or are missing",
           BUSY: "another driver runs this sweep", SIGINT: "interrupted (SIGINT)", SIGTERM: "interrupted (SIGTERM)"}
