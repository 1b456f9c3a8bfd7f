"""SIGINT and SIGTERM stop a sweep cleanly: trials are stopped, what finished stays stored.

Inside `graceful_stop()` the first SIGINT or SIGTERM is recorded and handed to Ray Tune's own
stop path (Tune stops its loop on SIGUSR1, saves its state and stops the trials); Tune's SIGINT
handler is switched off so both signals take the same road. Outside a Tune run the signal raises
KeyboardInterrupt. A second signal raises KeyboardInterrupt at once. The handlers also replace the
SIGTERM handler that `ray.init` installs, which dumps a C++ stack trace and exits 134.

After the block, `stop.signal` names the signal (None when none came): run.py then reports what
finished, marks the report partial and exits 130 / 143 (sweeper/exit_codes.py).
"""
from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Stop:
    signal: int | None = None
    handler: object = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""

    def rearm(self) -> None:
        """Install the handlers again: `ray.init` replaces the SIGTERM one with its own."""
        if self.handler is not None:
            for sig in STOP_SIGNALS:
                signal.signal(sig, self.handler)


@contextmanager
def graceful_stop():
    """Handle SIGINT/SIGTERM as described above (main thread only; elsewhere a no-op)."""
    stop = Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.signal is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping at once")
        stop.signal = signum
        from sweeper.console import notify

        notify(f"{signal.Signals(signum).name} received: stopping the trials; finished rows are kept "
               f"(send it again to stop at once)")
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if callable(tune_stop) and tune_stop is not handler:
            tune_stop(signal.SIGUSR1, frame)  # Tune's "stop the experiment" handler: ends fit() cleanly
        else:
            raise KeyboardInterrupt(signal.Signals(signum).name)

    stop.handler = handler
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    saved_usr1 = signal.getsignal(signal.SIGUSR1)
    saved_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Tune would otherwise take SIGINT over from us
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        signal.signal(signal.SIGUSR1, saved_usr1 if saved_usr1 is not None else signal.SIG_DFL)
        if saved_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = saved_env
