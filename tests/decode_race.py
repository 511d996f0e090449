"""Stress script for tests/test_no_hang.py: many threads decode and thumbnail damaged and clean files at once.

Run as ``python tests/decode_race.py FILE...``. It imports every module of vidseek that decodes, checks that
none left a Python log callback on FFmpeg's threads, then races decodes in 8 threads. With the hazard in
place (``--python-log-callback`` sets ``av.logging.set_level(av.logging.PANIC)`` again, as vidseek once
did) it deadlocks within seconds here; without it, it prints ``ok N`` and exits 0.
"""

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402

import vidseek.apps.service.media as media  # noqa: E402
import vidseek.operators.decode  # noqa: E402,F401 — every module that decodes: none may set a log callback
import vidseek.retrieval.rerank  # noqa: E402,F401
from vidseek.operators.decode import DecodeError, VideoDecoder  # noqa: E402
from vidseek.operators.ffmpeg_log import python_log_callback_active  # noqa: E402
from vidseek.operators.preprocess import PreprocessConfig  # noqa: E402

if "--python-log-callback" in sys.argv:  # the old code, to show this script catches it
    vidseek.operators.decode.quiet_ffmpeg = media.quiet_ffmpeg = lambda: None
    av.logging.set_level(av.logging.PANIC)
elif python_log_callback_active():
    sys.exit("a vidseek import routed FFmpeg's log through Python")
paths = [a for a in sys.argv[1:] if not a.startswith("--")]
done = []


def work(i: int) -> None:
    dec = VideoDecoder(PreprocessConfig(size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)), "fps:4", backend="pyav")
    for j in range(20):
        path = paths[(i + j) % len(paths)]
        try:
            if j % 3:
                media.frame_jpeg(path, (j * 0.37) % 8)
            else:
                list(dec.decode(path))
        except (media.ThumbnailError, DecodeError):
            pass
        done.append(1)


threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ok", len(done))
