"""What a failure was, in words a results row can keep, and whether retrying it can help.

Ray wraps an exception raised in a trial (RayTaskError, TuneError, TrainingFailedError, ...) and
colours its text; the stored `error` starts with the root cause's type and message instead, with no
ANSI codes, then a short traceback. Only infrastructure failures (a node or an actor lost, a
collective cut off by a dead peer) are worth Ray's retries: configuration, data and numeric errors
fail the same way every time and are stored at once.
"""
from __future__ import annotations

import re
import traceback

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Ray and torch.distributed failures that say "the machinery broke", not "this configuration is bad".
INFRASTRUCTURE_NAMES = frozenset({
    "RayActorError", "ActorDiedError", "ActorUnavailableError", "NodeDiedError", "WorkerCrashedError",
    "ObjectLostError", "OwnerDiedError", "ObjectFetchTimedOutError", "RaySystemError", "LocalRayletDiedError",
    "GetTimeoutError", "TaskUnschedulableError", "ActorUnschedulableError", "OutOfMemoryError",
    "WorkerGroupStartupTimeoutError", "WorkerGroupStartupFailedError", "PreemptionError",
    "DistError", "DistBackendError", "DistNetworkError", "DistStoreError",
})
# Only these libraries' classes count: torch.cuda.OutOfMemoryError (a batch too large) is not Ray's.
INFRASTRUCTURE_MODULES = ("ray.", "torch.distributed")
# torch's gloo backend reports a dead peer as a plain RuntimeError.
PEER_LOST = re.compile(r"Connection closed by peer|Connection reset by peer|Broken pipe|gloo.*(timed out|closed)|"
                       r"NCCL (error|communicator was aborted)", re.IGNORECASE)


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: through Ray's `.cause`, Train's worker failures and `__cause__`."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or getattr(exc, "controller_failure", None)
        if isinstance(inner, BaseException):
            exc = inner
            continue
        failures = getattr(exc, "worker_failures", None)
        if isinstance(failures, dict) and failures:
            exc = next(iter(failures.values()))
            continue
        if exc.__cause__ is not None:
            exc = exc.__cause__
            continue
        break
    return exc


def is_infrastructure(exc: BaseException) -> bool:
    """True when a retry can succeed: the root cause is a lost node, actor or peer.

    Wrappers (TrainingFailedError, RayTaskError, TuneError) are judged by what they wrap."""
    root = root_cause(exc)
    if any(cls.__name__ in INFRASTRUCTURE_NAMES and cls.__module__.startswith(INFRASTRUCTURE_MODULES)
           for cls in type(root).__mro__):
        return True
    return isinstance(root, RuntimeError) and bool(PEER_LOST.search(str(root)))


def describe(exc: BaseException, frames: int = 4) -> str:
    """'RootType: message' then the last few traceback frames, without ANSI codes."""
    root = root_cause(exc)
    message = strip_ansi(str(root)).strip()
    # A RayTaskError's text repeats the remote traceback; keep its first line only.
    first = message.splitlines()[0] if message else ""
    head = f"{type(root).__name__}: {first}" if first else type(root).__name__
    tb = "".join(traceback.format_tb(root.__traceback__, limit=-frames)) if root.__traceback__ else ""
    if not tb:
        remote = getattr(exc, "traceback_str", None) or getattr(root, "traceback_str", None) or ""
        tb = "\n".join(strip_ansi(remote).strip().splitlines()[-2 * frames:])
    return f"{head}\n{strip_ansi(tb)}".rstrip("\n")
