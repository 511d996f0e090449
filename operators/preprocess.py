"""Image geometry and normalisation taken from the model's own preprocess config (open_clip).

The decoder asks ``resize_plan`` for the size to decode to (resizing inside the decoder is far cheaper than
decoding full frames and resizing after); ``finish_frames`` crops/pads to the final square. The encoder
normalises with the config's mean/std. Nothing here hard-codes 224 or ImageNet constants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class PreprocessConfig:
    size: int  # square model input side
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_mode: str = "shortest"  # open_clip: shortest (resize + centre crop) | longest (pad) | squash
    interpolation: str = "bicubic"

    @classmethod
    def from_open_clip(cls, cfg: dict) -> "PreprocessConfig":
        size = cfg["size"]
        if isinstance(size, (tuple, list)):
            if size[0] != size[1]:
                raise ValueError(f"non-square model input {size} is not supported")
            size = size[0]
        return cls(
            size=int(size),
            mean=tuple(float(x) for x in cfg["mean"]),
            std=tuple(float(x) for x in cfg["std"]),
            resize_mode=cfg.get("resize_mode", "shortest") or "shortest",
            interpolation=cfg.get("interpolation", "bicubic") or "bicubic",
        )

    def as_dict(self) -> dict:
        return {
            "size": self.size,
            "mean": list(self.mean),
            "std": list(self.std),
            "resize_mode": self.resize_mode,
            "interpolation": self.interpolation,
        }


def resize_plan(width: int, height: int, cfg: PreprocessConfig) -> tuple[int, int]:
    """(width, height) to decode to so that ``finish_frames`` only has to crop or pad."""
    s = cfg.size
    if cfg.resize_mode == "squash" or width <= 0 or height <= 0:
        return s, s
    if cfg.resize_mode == "longest":
        scale = s / max(width, height)
    else:  # shortest
        scale = s / min(width, height)
    # Even sizes: some swscale paths reject odd widths for yuv420.
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def finish_frames(frames: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Centre-crop (shortest) or pad (longest) decoded frames [N, h, w, 3] to [N, size, size, 3]."""
    n, h, w, _ = frames.shape
    s = cfg.size
    if (h, w) == (s, s):
        return frames
    if cfg.resize_mode == "longest":
        out = np.zeros((n, s, s, 3), dtype=np.uint8)
        hh, ww = min(h, s), min(w, s)
        top, left = (s - hh) // 2, (s - ww) // 2
        out[:, top : top + hh, left : left + ww] = frames[:, :hh, :ww]
        return out
    if h < s or w < s:  # decoder could not resize (tiny source): resize here
        return resize_frames_torch(frames, cfg)
    top, left = (h - s) // 2, (w - s) // 2
    return np.ascontiguousarray(frames[:, top : top + s, left : left + s])


def resize_frames_torch(frames: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Fallback for frames of any size: resize per ``cfg`` with torch, then crop/pad. [N, H, W, 3] uint8."""
    import torch  # lazily: decode workers should not pay torch's import time and memory
    import torch.nn.functional as F

    n, h, w, _ = frames.shape
    tw, th = resize_plan(w, h, cfg)
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()  # [N, 3, H, W]
    mode = "bicubic" if cfg.interpolation == "bicubic" else "bilinear"
    x = F.interpolate(x, size=(th, tw), mode=mode, align_corners=False, antialias=True)
    x = x.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # [N, th, tw, 3]
    if (th, tw) == (h, w):
        return x
    return finish_frames(x, cfg)


def normalize_frames(frames: "torch.Tensor", cfg: PreprocessConfig, dtype: "torch.dtype") -> "torch.Tensor":
    """uint8 [B, H, W, 3] -> normalised [B, 3, H, W] in ``dtype`` on the frames' device."""
    import torch

    x = frames.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # [B, 3, H, W]
    mean = torch.tensor(cfg.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg.std, device=x.device).view(1, 3, 1, 1)
    return ((x - mean) / std).to(dtype)
