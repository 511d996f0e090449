"""FFmpeg's log, kept off stderr without ever calling into Python from FFmpeg's threads.

PyAV can route FFmpeg's log lines through a Python callback (``av.logging.set_level(<a level>)``; errors
pass it whatever the level). FFmpeg's frame threads then need the GIL to log, while a thread that holds
the GIL and closes a codec (``avcodec_free_context``) waits for those frame threads: a deadlock that no
Python timer can break (PyAV issues #751, #909, #2276; docs/decoding.md "Logging"). So PyAV's callback
stays the C no-op (``set_level(None)``), and decord's own FFmpeg copy is set to QUIET (a C-side level,
no callback). Nothing is lost by it: vidseek counts lost frames from decode errors, not from log lines.
"""

from __future__ import annotations

import av.logging


def quiet_ffmpeg() -> None:
    """Silence FFmpeg in PyAV with its C no-op callback (idempotent; undoes a ``set_level(<level>)``)."""
    av.logging.set_level(None)


def quiet_decord(decord_module) -> None:
    """Silence decord's FFmpeg copy (a level inside FFmpeg, no callback into Python)."""
    decord_module.logging.set_level(decord_module.logging.QUIET)


def python_log_callback_active() -> bool:
    """Whether PyAV currently routes FFmpeg's log through Python (the deadlock hazard above)."""
    return av.logging.get_level() is not None


quiet_ffmpeg()
