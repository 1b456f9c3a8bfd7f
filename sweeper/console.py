"""What a sweep prints: our own lines on the terminal, everyone else's output in a log file.

Ray, Tune, W&B and Optuna write to stdout/stderr from the driver, from threads and from child
processes (raylet, wandb-core). Redirecting Python's sys.stdout would miss the child processes, so
`quiet` points file descriptors 1 and 2 at SWEEP_DIR/sweep.log for the duration of the sweep and
keeps a duplicate of the terminal for our lines. `-v` skips the redirection.

The progress display is a tqdm bar on a terminal (finish lines printed above it) and plain lines
otherwise (a log, CI, `ray job logs`), where a redrawn bar would be noise.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import IO, Iterator


class Console:
    """Our output streams; `out` may be a terminal while fd 1 points at the log file.

    Tune pickles its callbacks (and with them this console): an unpickled Console writes to the
    streams of the `quiet` block running then, or to sys.stdout/sys.stderr.
    """

    def __init__(self, out: IO[str] | None = None, err: IO[str] | None = None, log_path: Path | None = None,
                 verbose: bool = False):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.log_path = log_path
        self.verbose = verbose
        self.bar = None  # the live ProgressDisplay's tqdm bar, so lines print above it

    def __getstate__(self) -> dict:
        return {"log_path": self.log_path, "verbose": self.verbose}

    def __setstate__(self, state: dict) -> None:
        active = _ACTIVE[-1] if _ACTIVE else None
        self.__init__(active.out if active else None, active.err if active else None, **state)

    @property
    def is_tty(self) -> bool:
        try:
            return self.out.isatty()
        except (AttributeError, ValueError):
            return False

    def line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.out)
        else:
            print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.err)
        else:
            print(text, file=self.err, flush=True)


_ACTIVE: list[Console] = []  # the console of the running `quiet` block


def notify(text: str) -> None:
    """A warning for the user from code that holds no console (the results store, signal
    handlers): the terminal inside a `quiet` block (not the log), else stderr."""
    if _ACTIVE:
        _ACTIVE[-1].warn(text)
    else:
        print(text, file=sys.stderr, flush=True)


def _terminal_copy(stream: IO[str], fd: int) -> IO[str]:
    """A stream that still reaches the terminal after fd is redirected (or the stream itself when
    it is not backed by fd, e.g. pytest's capture)."""
    try:
        if stream.fileno() == fd:
            return os.fdopen(os.dup(fd), "w", buffering=1, encoding=getattr(stream, "encoding", None) or "utf-8",
                             errors="replace")
    except (AttributeError, ValueError, io.UnsupportedOperation):
        pass
    return stream


@contextlib.contextmanager
def quiet(log_path: Path, verbose: bool = False) -> Iterator[Console]:
    """Our lines to the terminal, everything else (fds 1 and 2, sys.stdout/err) to log_path."""
    if verbose:
        yield Console(log_path=None, verbose=True)
        return
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    out, err = _terminal_copy(sys.stdout, 1), _terminal_copy(sys.stderr, 2)
    log = open(log_path, "a", buffering=1, encoding="utf-8", errors="replace")
    log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)}\n")
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    previous = sys.stdout, sys.stderr
    for fd in (1, 2):
        os.dup2(log.fileno(), fd)
    sys.stdout = sys.stderr = log
    _ACTIVE.append(Console(out, err, log_path=log_path))
    try:
        yield _ACTIVE[-1]
    finally:
        _ACTIVE.pop()
        for stream in (sys.stdout, sys.stderr, *previous):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = previous
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        for stream in (out, err):
            if stream not in previous:
                stream.close()
        log.close()


def fmt_duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "-"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


class ProgressDisplay:
    """The sweep's progress: a tqdm bar on a terminal, one plain line per event otherwise."""

    def __init__(self, console: Console, total: int, unit: str = "trial"):
        self.console, self.total, self.unit = console, total, unit
        self.started = time.time()
        self.bar = None  # made at the first update: a tqdm bar cannot be pickled with Tune's callbacks
        self.closed = False

    def __getstate__(self) -> dict:
        return {**self.__dict__, "bar": None}

    def _bar(self):
        if self.bar is None and not self.closed and self.console.is_tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit=self.unit, file=self.console.out, dynamic_ncols=True,
                            leave=True, initial=0,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}] {postfix}")
            self.console.bar = self.bar
        return self.bar

    def update(self, done: int, running: int, failed: int, best: str, event: str | None) -> None:
        """New counts; event (a finished or failed trial) is printed as its own line."""
        counts = f"{running} running, {failed} failed"
        bar = self._bar()
        if bar is not None:
            bar.n = done
            bar.set_postfix_str(f"{counts} | {best}", refresh=True)
            if event:
                self.console.line(event)
            return
        if event:
            elapsed = time.time() - self.started
            eta = elapsed / done * (self.total - done) if done else float("nan")
            self.console.line(f"[{done}/{self.total} done, {counts}] {fmt_duration(elapsed)}, "
                              f"ETA {fmt_duration(eta)} | {event} | {best}")

    def heartbeat(self, text: str) -> None:
        """A sign of life during long trials: a line in plain mode; the bar's clock shows it on a terminal."""
        if self._bar() is None:
            elapsed = time.time() - self.started
            self.console.line(f"[running {fmt_duration(elapsed)}] {text}")

    def close(self) -> None:
        self.closed = True
        if self.bar is not None:
            self.bar.close()
            self.console.bar = None
            self.bar = None
