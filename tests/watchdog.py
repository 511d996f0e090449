"""A per-test watchdog that fires even while native code holds the GIL: pytest plugin (see conftest.py).

pytest-timeout's handler is Python code: it needs the GIL, and a thread stuck in native code while holding
it (the PyAV logging deadlock of docs/decoding.md) kept a test run frozen past its 900 s limit. Python's
``faulthandler`` arms a C thread instead: when a test outlives ``VIDSEEK_TEST_WATCHDOG_S`` (default 540 s,
beyond pytest-timeout's limit, which fails a merely slow test first and lets the run go on), it writes every
thread's Python stack to the terminal's stderr without taking the GIL and ends the run with exit code 1.
The stuck test is the one whose function appears in the dump.
"""

from __future__ import annotations

import faulthandler
import os
import sys

import pytest

DEFAULT_S = 540.0
_terminal = None  # the terminal's stderr, outside pytest's output capture


def watchdog_seconds() -> float:
    return float(os.environ.get("VIDSEEK_TEST_WATCHDOG_S", DEFAULT_S))


def pytest_configure(config):
    """Find the real stderr: pytest's fd capture points fd 2 at a temporary file that dies with the run."""
    global _terminal
    capman = config.pluginmanager.getplugin("capturemanager")
    saved = getattr(getattr(getattr(capman, "_global_capturing", None), "err", None), "targetfd_save", None)
    _terminal = os.fdopen(os.dup(saved if isinstance(saved, int) else sys.__stderr__.fileno()), "w")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    faulthandler.dump_traceback_later(watchdog_seconds(), exit=True, file=_terminal)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def pytest_unconfigure(config):
    """Close the terminal's copy (else a run that saw any warning reports it unclosed, a ResourceWarning at exit)."""
    global _terminal
    if _terminal is not None:
        faulthandler.cancel_dump_traceback_later()
        _terminal.close()
        _terminal = None
