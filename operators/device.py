"""Where CLIP runs: the device and precision a user asked for, checked, and the one frame transfer to it.

Everything device-specific is here (docs/gpu.md): the rest of the code moves tensors with
``.to(tensor.device)`` and never names CUDA.
"""

from __future__ import annotations

import numpy as np
import torch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class DeviceError(ValueError):
    """The requested device does not exist here; the message says what to use instead."""


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` (CUDA when visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; a CUDA device that is not
    visible is refused with what to do, never left to fail deep inside the model."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise DeviceError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is built without CUDA" if torch.version.cuda is None else "no CUDA device is visible"
            raise DeviceError(f"--device {device}: {why} (CUDA_VISIBLE_DEVICES, driver); use --device cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    return dev


def pick_dtype(device: torch.device, precision: str = "auto") -> torch.dtype:
    """``auto``: bf16 on CUDA (CLIP's activations fit its range; fp16 can overflow), fp32 on CPU."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use auto, {', '.join(PRECISIONS)}")
    return PRECISIONS[precision]


def frames_to_device(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 frames [B, H, W, 3] -> the same uint8 tensor on ``device`` (normalised there, 4× fewer bytes
    over the bus than float). Always a copy: Ray hands out read-only arrays. For CUDA the copy goes to
    pinned memory first, so the transfer is asynchronous (``non_blocking``)."""
    host = torch.from_numpy(np.array(frames, dtype=np.uint8, copy=True))
    if device.type == "cuda":
        return host.pin_memory().to(device, non_blocking=True)
    return host.to(device)


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError)


def release_cached_memory(device: torch.device) -> None:
    """After an out-of-memory error: give the allocator's cached blocks back before a smaller retry."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
