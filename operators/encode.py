"""CLIP image and text encoders over open_clip: ``load_clip`` plus the ``ImageEncoder`` operator.

Frame vectors are returned *raw* (un-normalised): query-weighted pooling (CLIP-Hitchhiker) sums raw frame
features; every cosine is normalised where it is computed.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidseek.operators.device import (
    frames_to_device,
    is_out_of_memory,
    pick_device,
    pick_dtype,
    release_cached_memory,
)
from vidseek.operators.model_stamp import weights_identity
from vidseek.operators.models import (
    ModelLoadError,
    check_pretrained_available,
    get_model_entry,
    open_clip_module,
    pretrained_failure_message,
    resolve_pretrained,
)
from vidseek.operators.preprocess import PreprocessConfig, normalize_frames, resize_frames_torch
from vidseek.operators.text_encode import encode_text

open_clip = open_clip_module()  # open_clip, with vidseek's built-in architectures added

log = logging.getLogger(__name__)


@dataclass
class LoadedClip:
    """A ready model with everything needed to use it and to stamp a store with its identity."""

    model: torch.nn.Module
    tokenizer: Any
    preprocess: PreprocessConfig
    name: str
    pretrained: str
    device: torch.device
    dtype: torch.dtype

    @property
    def embed_dim(self) -> int:
        return (
            int(self.model.text_projection.shape[1])
            if hasattr(self.model, "text_projection") and isinstance(self.model.text_projection, torch.Tensor)
            else int(self.model.visual.output_dim)
        )

    @property
    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", 77))

    def stamp(self) -> dict:
        """Identity of the embedding space: vectors with different stamps must not be mixed."""
        return {
            "model": self.name,
            "weights": weights_identity(self.pretrained),
            "pretrained": self.pretrained,  # how to load it again (not part of the identity)
            "embed_dim": self.embed_dim,
            "preprocess": self.preprocess.as_dict(),
        }


def load_clip(
    name: str = "tiny-random", pretrained: str | None = None, device: str = "auto", precision: str = "auto"
) -> LoadedClip:
    """Build a CLIP model by registry name; ``pretrained``: tag, checkpoint path, ``none`` or registry default."""
    entry = get_model_entry(name)
    pretrained = resolve_pretrained(name, pretrained)
    dev = pick_device(device)
    dtype = pick_dtype(dev, precision)
    check_pretrained_available(entry.arch, pretrained)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(entry.seed)  # deterministic random init for "none"
            with warnings.catch_warnings(), _quiet_open_clip():
                warnings.simplefilter("ignore")
                model = open_clip.create_model(
                    entry.arch, pretrained=None if pretrained == "none" else pretrained, device=dev
                )
    except ModelLoadError:
        raise
    except (OSError, RuntimeError, ValueError) as e:
        raise ModelLoadError(pretrained_failure_message(entry.arch, pretrained, e)) from e
    model.eval().requires_grad_(False)
    if dtype != torch.float32:
        model = model.to(dtype)
    return LoadedClip(
        model=model,
        tokenizer=open_clip.get_tokenizer(entry.arch),
        preprocess=PreprocessConfig.from_open_clip(open_clip.get_model_preprocess_cfg(model)),
        name=name,
        pretrained=pretrained,
        device=dev,
        dtype=dtype,
    )


class _quiet_open_clip:
    """open_clip logs a warning for every random-init model; random init is deliberate here."""

    def __enter__(self):
        self._logger = logging.getLogger()
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self._logger.setLevel(self._level)


def encode_images(clip: LoadedClip, frames: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 frames [N, H, W, 3] -> raw image features float32 [N, D].

    A batch that runs out of device memory is split in half and retried, down to one frame; only an
    out-of-memory error at one frame is raised (docs/gpu.md)."""
    return encode_images_adaptive(clip, frames, batch_size)[0]


@torch.inference_mode()
def encode_images_adaptive(clip: LoadedClip, frames: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, int]:
    """``encode_images`` plus the batch size that fitted (callers keep it for their next call)."""
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [N, H, W, 3] uint8, got shape {frames.shape}")
    s = clip.preprocess.size
    if frames.shape[1:3] != (s, s):
        frames = resize_frames_torch(frames, clip.preprocess)
    out = np.empty((len(frames), clip.embed_dim), dtype=np.float32)
    i = 0
    while i < len(frames):
        chunk = frames[i : i + batch_size]
        try:
            x = normalize_frames(frames_to_device(chunk, clip.device), clip.preprocess, clip.dtype)  # [b, 3, s, s]
            out[i : i + len(chunk)] = clip.model.encode_image(x).float().cpu().numpy()
        except RuntimeError as e:
            if not is_out_of_memory(e) or batch_size == 1:
                raise
            x = e = None  # drop the failed batch's tensors (and the traceback holding them) before retrying
            release_cached_memory(clip.device)
            batch_size = max(1, batch_size // 2)
            log.warning("out of device memory: encoding in batches of %d", batch_size)
            continue
        i += len(chunk)
    return out, batch_size


def tokenize(clip: LoadedClip, texts: list[str], long_text: str = "truncate") -> tuple[torch.Tensor, list[int]]:
    """Token ids [M, ctx] and, per text, how many rows it owns (1 unless ``long_text='chunk'``).

    Text longer than the context is never cut silently: ``truncate`` warns, ``chunk`` splits the text into
    context-sized word windows whose embeddings are averaged, ``error`` raises.
    """
    ctx = clip.context_length
    bpe = getattr(clip.tokenizer, "encode", None)
    rows: list[str] = []
    owners: list[int] = []
    for text in texts:
        n_tokens = len(bpe(text)) + 2 if bpe else 0  # + start/end tokens
        if n_tokens <= ctx:
            rows.append(text)
            owners.append(1)
            continue
        if long_text == "error":
            raise ValueError(f"query has {n_tokens} tokens, model context is {ctx}: {text[:60]!r}…")
        if long_text == "truncate":
            log.warning("query of %d tokens truncated to the model context of %d: %r…", n_tokens, ctx, text[:60])
            rows.append(text)
            owners.append(1)
            continue
        words, piece, pieces = text.split(), [], []
        for w in words:
            if piece and len(bpe(" ".join(piece + [w]))) + 2 > ctx:
                pieces.append(" ".join(piece))
                piece = []
            piece.append(w)
        pieces.append(" ".join(piece))
        rows.extend(pieces)
        owners.append(len(pieces))
    return clip.tokenizer(rows), owners


@torch.inference_mode()
def encode_texts(clip: LoadedClip, texts: list[str], long_text: str = "truncate") -> np.ndarray:
    """Texts -> raw text features float32 [Q, D] (chunks of a long text averaged after normalising)."""
    if isinstance(texts, str):
        texts = [texts]
    tokens, owners = tokenize(clip, list(texts), long_text)
    feats = encode_text(clip.model, tokens.to(clip.device)).float()  # [M, D]
    out, i = [], 0
    for n in owners:
        # a chunked text is the mean of its unit chunk vectors; a text that fits stays raw like the rest
        out.append(feats[i] if n == 1 else torch.nn.functional.normalize(feats[i : i + n], dim=-1).mean(0))
        i += n
    return torch.stack(out).cpu().numpy()


class ImageEncoder:
    """Operator: uint8 frames [B, H, W, 3] -> raw image features float32 [B, D], with the model loaded once.

    A batch that runs out of device memory is split and retried (``encode_images``); what still fails (an
    out-of-memory error at one frame, a model error) is raised, and the index job's encode stage turns it
    into the videos' failure records (pipeline/stages/encode.py).
    """

    def __init__(
        self,
        model: str = "tiny-random",
        pretrained: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        batch_size: int = 256,
        threads: int | None = None,
    ):
        self.clip = load_clip(model, pretrained, device, precision)
        if self.clip.device.type == "cpu":
            # Ray pins OMP threads to the actor's (fractional) CPU reservation; CLIP on CPU wants the cores.
            torch.set_num_threads(threads or os.cpu_count() or 1)
        self.batch_size = batch_size

    @property
    def embed_dim(self) -> int:
        return self.clip.embed_dim

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        if len(frames) == 0:
            return np.zeros((0, self.clip.embed_dim), np.float32)
        # a batch size that once ran out of memory stays halved: no retry storm on every later batch
        try:
            out, self.batch_size = encode_images_adaptive(self.clip, np.asarray(frames), self.batch_size)
        except RuntimeError as e:
            if is_out_of_memory(e):
                self.batch_size = 1  # it was halved down to one frame before giving up
            raise
        return out
