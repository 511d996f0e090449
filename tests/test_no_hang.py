"""Nothing hangs: FFmpeg's threads never call into Python, and files that would block a decoder are refused.

The race test runs tests/decode_race.py in a subprocess with a hard timeout, so a deadlock fails the test
instead of freezing the run. That script deadlocks within seconds here when the old PyAV log callback is
put back (``--python-log-callback``), which is how it was checked to catch the bug (docs/decoding.md).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ffmpeg

from vidseek.operators.decode import DecodeError, check_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def race_files(media) -> list[str]:
    clean = media / "race_clean.mp4"
    if not clean.exists():
        ffmpeg(
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25:duration=8",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "25",
            "-movflags",
            "+faststart",
            str(clean),
        )
    data = bytearray(clean.read_bytes())  # damaged packets make FFmpeg's frame threads log errors
    rng = np.random.default_rng(1)
    for k in range(1, 9):
        at = len(data) * k // 10
        data[at : at + 400] = rng.integers(0, 256, 400, dtype=np.uint8).tobytes()
    corrupt = media / "race_corrupt.mp4"
    corrupt.write_bytes(bytes(data))
    return [str(corrupt), str(clean)]


def test_parallel_thumbnails_and_decodes_do_not_deadlock(race_files):
    try:
        r = subprocess.run(
            [sys.executable, str(ROOT / "tests" / "decode_race.py"), *race_files],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("8 threads of thumbnails and decodes deadlocked (FFmpeg's threads waiting for the GIL?)")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["ok", "160"]  # every call returned: 8 threads × 20 calls


@pytest.mark.parametrize("kind", ["fifo", "char_device"])
def test_files_that_block_a_decoder_are_named_not_opened(tmp_path, kind):
    path = tmp_path / "clip.mp4"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would block until a writer appears
        want = "is a FIFO (named pipe), not a video file"
    else:
        path.symlink_to("/dev/zero")  # a device that streams forever
        want = "is a character device, not a video file"
    with pytest.raises(DecodeError, match=re.escape(want)) as e:
        check_file(str(path))
    assert str(path) in str(e.value)
