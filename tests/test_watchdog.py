"""The test watchdog ends a test that hangs in native code holding the GIL, and prints every thread's stack."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_watchdog_ends_a_test_stuck_in_native_code_holding_the_gil(tmp_path):
    (tmp_path / "test_stuck.py").write_text(
        textwrap.dedent("""
        import ctypes
        import threading

        def test_stuck():
            threading.Thread(target=lambda: threading.Event().wait(), name="bystander", daemon=True).start()
            # A native lock taken twice, like FFmpeg's frame threads in the PyAV deadlock. PyDLL keeps the
            # GIL during the call, and a signal does not end a mutex wait: no Python code can run again
            libc = ctypes.PyDLL(None)
            mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER (glibc)
            libc.pthread_mutex_lock(mutex)
            libc.pthread_mutex_lock(mutex)
    """)
    )
    t = time.monotonic()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "watchdog",
            "-p",
            "no:cacheprovider",
            "--timeout",
            "1",
            str(tmp_path / "test_stuck.py"),
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(HERE), "VIDSEEK_TEST_WATCHDOG_S": "3", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    took = time.monotonic() - t
    assert r.returncode == 1, (r.returncode, r.stdout[-500:], r.stderr[-2000:])
    assert took < 60, f"the watchdog took {took:.0f} s to end a 3 s hang"
    assert "Timeout (0:00:03)!" in r.stderr, r.stderr[-2000:]
    assert "in test_stuck" in r.stderr  # the stuck thread's stack, naming the test function
    assert r.stderr.count("Thread 0x") >= 2  # every thread, the bystander too
