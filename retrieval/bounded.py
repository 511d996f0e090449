"""Calls that may block (a decode of a file on a stalled mount) bounded in time, in threads of their own.

The caller waits at most ``timeout_s`` and gets ``CallTimeout``; the call itself goes on in its own daemon
thread (a thread blocked in the kernel cannot be stopped), so a hung decode never holds a thread of the
caller's pool (the HTTP service's request threads) beyond the limit. ``permits`` caps how many such calls
run at once, hung ones included: when all are taken, new calls time out waiting instead of piling up.
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")


class CallTimeout(Exception):
    """The call did not finish in time; ``str(e)`` says what and how long."""


def call_with_timeout(
    fn: Callable[[], T], timeout_s: float, what: str, permits: threading.BoundedSemaphore | None = None
) -> T:
    """``fn()``, or CallTimeout after ``timeout_s`` s (the call's own exceptions are re-raised)."""
    if permits is not None and not permits.acquire(timeout=timeout_s):
        raise CallTimeout(f"{what}: timeout after {timeout_s:.0f} s waiting for a free decoder (all are busy)")
    done = threading.Event()
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 — handed to the caller below
            result["error"] = e
        finally:
            done.set()
            if permits is not None:
                permits.release()

    try:
        threading.Thread(target=run, name=f"bounded: {what}"[:60], daemon=True).start()
    except BaseException:  # no thread (the machine is out of them): the permit is not lost
        if permits is not None:
            permits.release()
        raise
    if not done.wait(timeout_s):
        raise CallTimeout(f"{what}: timeout after {timeout_s:.0f} s")
    if "error" in result:
        raise result["error"]
    return result["value"]
