"""A clean terminal for a successful job: Ray's known-benign lines go to the log, everything else passes.

Ray's C++ core worker in the driver writes its ERROR-level lines straight to file descriptor 2, so no
Python logging setting reaches them. One of them appears on every healthy job: Ray Data's map actors take
their constructor arguments through the object store, and the core worker says so with an ``E`` line
(ray-project/ray#53727) although nothing is wrong. ``filtered_stderr`` routes fd 2 through a pipe for the
job's duration; a line matching ``BENIGN`` is dropped (shown with ``vidseek index -v``; Ray's session log
has it too), any other byte reaches the terminal unchanged and at once (progress bars included). Real warnings are untouched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import sys
from typing import Iterator

log = logging.getLogger("vidseek.ray")

BENIGN = [
    re.compile(
        rb"core_worker\.cc:\d+: Actor with class name: '.*' and ID: '\w+' has constructor arguments in the "
        rb"object store and max_restarts > 0"
    ),
]
_LOG_LINE_START = re.compile(rb"^\[\d")  # "[2026-12-01 09:06:04,359 E ...": a C++ log line; wait for its end


def quiet_token_auth_notice() -> None:
    """Ray's default for a new local cluster is token auth (kept), announced by a WARNING on every start
    although nothing needs doing: demote that one notice to DEBUG. Its "disabled" warning still shows."""
    logger = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DemoteNotice) for f in logger.filters):
        logger.addFilter(_DemoteNotice())


def quiet_dashboard_failure() -> None:
    """A job asks for no dashboard, but Ray still starts its API server (usage stats) and, when that process
    dies or misses its 60 s start on a busy machine (once in four fresh-clone CI runs), logs ERROR lines on
    the terminal while the job runs on without it. Those lines go to vidseek's log at INFO (`-v` shows them)."""
    logger = logging.getLogger("ray._private.services")
    if not any(isinstance(f, _DemoteDashboardFailure) for f in logger.filters):
        logger.addFilter(_DemoteDashboardFailure())


class _DemoteDashboardFailure(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.getMessage())
        if "dashboard" in text.lower():
            log.info("ray (the job goes on without it): %s", text)
            return False
        return True


class _DemoteNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Token authentication is enabled for this Ray cluster"):
            log.debug("ray: %s", record.getMessage())
            return False
        return True


def _is_benign(line: bytes) -> bool:
    return any(p.search(line) for p in BENIGN)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Within the block, this process's fd 2 passes through a filter that logs BENIGN lines instead.

    The filter is a child process, not a thread: a thread would need this process's GIL to drain the pipe,
    and C++ threads writing to a full pipe would then wait on Python (the hazard of docs/decoding.md).
    Enter it after Ray has started, so that Ray's own processes keep the real stderr."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        yield
        return
    show = "1" if log.isEnabledFor(logging.DEBUG) else "0"
    pump = subprocess.Popen(
        [sys.executable, "-m", "vidseek.pipeline.quiet_ray", show],
        stdin=subprocess.PIPE,
        stdout=saved,
        stderr=saved,
        close_fds=True,
    )
    os.dup2(pump.stdin.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        pump.stdin.close()  # EOF: the filter writes what it holds and exits
        try:
            pump.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pump.kill()
        os.close(saved)


def _pump(src, out_fd: int, show_benign: bool) -> None:
    """Copy ``src`` to ``out_fd`` at once, holding back only a partial line that may be a C++ log line."""
    pending = b""
    while chunk := src.read1(65536):
        pending += chunk
        while pending:
            cut = max(pending.rfind(b"\n"), pending.rfind(b"\r"))
            if cut < 0:
                if not (_LOG_LINE_START.match(pending) or pending == b"["):
                    os.write(out_fd, pending)
                    pending = b""
                break
            done, pending = pending[: cut + 1], pending[cut + 1 :]
            for line in done.splitlines(keepends=True):
                if not _is_benign(line) or show_benign:
                    os.write(out_fd, line)
    if pending:
        os.write(out_fd, pending)


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the job's to handle; the filter ends at EOF
    _pump(sys.stdin.buffer, sys.stdout.fileno(), sys.argv[1:] == ["1"])
