"""Temporal-head checkpoints and per-video learned vectors (docs/methods.md "CLIP4Clip seqTransf (learned
temporal head)").

A head only means something in the embedding space it was trained in, so its checkpoint records the model
stamp (``LoadedClip.stamp()``) of the frame vectors it saw, and ``load_head`` refuses another one
(compared on model, weights, embed_dim, preprocess — the same keys a store compares).

Checkpoint (``torch.save``; plain tensors and Python values, loads with ``weights_only=True``)::

    {"format": "vidseek-head", "version": 1,
     "arch":   {"type": "seqTransf", "width", "layers", "heads", "max_frames", "quick_gelu", "mlp_ratio"}
               | {"type": "seqLSTM", "width"},
     "config": {"n_frames": 12, ...},   # how to use it (frames sampled uniformly per video) + caller's keys
     "stamp":  {...},                   # embedding model of the frame vectors
     "extra":  {...},                   # e.g. training config, validation metrics, import report
     "state_dict": {...}}

``head_id(path)`` is a short content hash: what a store records as ``learned_head`` for its learned vectors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
from open_clip.transformer import QuickGELU

from vidseek.operators.aggregate import pad_frames
from vidseek.operators.model_stamp import describe_stamp_diff, file_sha256
from vidseek.operators.temporal import SeqLSTMHead, SeqTransfHead, uniform_frame_indices

FORMAT, VERSION = "vidseek-head", 1
HEAD_TYPES = ("seqTransf", "seqLSTM")
DEFAULT_FRAMES = 12  # CLIP4Clip's max_frames


class HeadMismatchError(ValueError):
    """A head used with frame vectors of another embedding model than the one it was trained on."""


def head_arch(head: nn.Module) -> dict:
    if isinstance(head, SeqTransfHead):
        blk = head.resblocks[0] if len(head.resblocks) else None
        return {
            "type": "seqTransf",
            "width": head.width,
            "layers": len(head.resblocks),
            "heads": head.heads,
            "max_frames": head.frame_position_embeddings.num_embeddings,
            "quick_gelu": bool(blk is not None and isinstance(blk.mlp.gelu, QuickGELU)),
            "mlp_ratio": blk.mlp.c_fc.out_features / head.width if blk is not None else 4.0,
        }
    if isinstance(head, SeqLSTMHead):
        return {"type": "seqLSTM", "width": head.width}
    raise TypeError(f"not a temporal head: {type(head).__name__}")


def build_head(arch: dict) -> nn.Module:
    """An uninitialised head of this architecture (weights come from a state dict)."""
    kind = arch.get("type")
    if kind == "seqTransf":
        head = SeqTransfHead(
            int(arch["width"]),
            layers=int(arch["layers"]),
            heads=int(arch["heads"]),
            max_frames=int(arch["max_frames"]),
            quick_gelu=bool(arch.get("quick_gelu")),
        )
        if float(arch.get("mlp_ratio", 4.0)) != 4.0:
            from open_clip.transformer import ResidualAttentionBlock

            act = QuickGELU if arch.get("quick_gelu") else nn.GELU
            head.resblocks = nn.ModuleList(
                [
                    ResidualAttentionBlock(
                        head.width, head.heads, mlp_ratio=float(arch["mlp_ratio"]), act_layer=act, batch_first=True
                    )
                    for _ in range(int(arch["layers"]))
                ]
            )
        return head
    if kind == "seqLSTM":
        return SeqLSTMHead(int(arch["width"]))
    raise ValueError(f"unknown head type {kind!r}; known: {HEAD_TYPES}")


def new_head(kind: str, clip_model: nn.Module | None = None, width: int | None = None, layers: int = 4) -> nn.Module:
    """A head to train: seqTransf initialised from the CLIP text tower (CLIP4Clip) when its width matches
    the embedding, else randomly; seqLSTM with PyTorch's default init. Seed torch first for repeatability."""
    if kind == "seqTransf":
        if clip_model is not None:
            try:
                return SeqTransfHead.from_clip_text(clip_model, layers=layers)
            except ValueError:
                if width is None:
                    raise
        return SeqTransfHead(int(width), layers=layers)
    if kind == "seqLSTM":
        if width is None:
            width = int(clip_model.text_projection.shape[1])
        return SeqLSTMHead(int(width))
    raise ValueError(f"unknown head type {kind!r}; choose from {list(HEAD_TYPES)}")


def save_head(path: str | Path, head: nn.Module, config: dict, stamp: dict, extra: dict | None = None) -> str:
    """Write the checkpoint (atomically: a crash never leaves half a file at ``path``); returns its head_id."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {"n_frames": DEFAULT_FRAMES, **(config or {})}
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "arch": head_arch(head),
        "config": config,
        "stamp": dict(stamp),
        "extra": extra or {},
        "state_dict": {k: v.detach().float().cpu().contiguous() for k, v in head.state_dict().items()},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return head_id(path)


def read_head(path: str | Path) -> dict:
    """The whole checkpoint dict; ValueError when the file is not a vidseek head."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"head checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 — pickle/zip errors come in many types
        raise ValueError(f"{path}: not a readable head checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not a vidseek head checkpoint (train one with `vidseek train` or import one "
            "with `vidseek import-clip4clip`)"
        )
    if int(ckpt.get("version", 0)) > VERSION:
        raise ValueError(f"{path}: head format version {ckpt['version']} is newer than this vidseek ({VERSION})")
    return ckpt


def check_stamp(trained: dict, stamp: dict, what: str = "head") -> None:
    """Raise HeadMismatchError naming both models unless the stamps agree on the identity keys."""
    detail = describe_stamp_diff(trained, stamp, "head has", "here")
    if detail:
        raise HeadMismatchError(
            f"{what} was trained on frame vectors of model {trained.get('model')!r} (weights "
            f"{trained.get('weights')}) but is used with model {stamp.get('model')!r} (weights {stamp.get('weights')})"
            f" — {detail}. A head only works in its own embedding space: use it with a store indexed by "
            f"--model {trained.get('model')} --pretrained {trained.get('pretrained', trained.get('weights'))}, "
            "or train a new head on this store with `vidseek train`."
        )


def load_head(
    path: str | Path, stamp: dict | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    """(head in eval mode, its config). With ``stamp``, refuse a head trained on another embedding model."""
    ckpt = read_head(path)
    if stamp is not None:
        check_stamp(ckpt["stamp"], stamp, what=f"head {path}")
    head = build_head(ckpt["arch"])
    try:
        head.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the recorded architecture {ckpt['arch']}: {e}") from e
    return head.to(device).eval(), {"n_frames": DEFAULT_FRAMES, **ckpt["config"]}


def head_id(path: str | Path) -> str:
    """Short content hash of a head checkpoint file (16 hex digits of SHA-256)."""
    return f"sha256:{file_sha256(path)}"


def sample_frames(vectors, n_frames: int = DEFAULT_FRAMES) -> np.ndarray:
    """n_frames of a video's raw frame vectors [T, D] at uniform chunk midpoints (all when T <= n_frames)."""
    v = vectors.detach().cpu().numpy() if isinstance(vectors, torch.Tensor) else np.asarray(vectors)
    return np.asarray(v[uniform_frame_indices(len(v), n_frames)], dtype=np.float32)


@torch.no_grad()
def learned_vectors(
    head: nn.Module, per_video: Sequence, n_frames: int = DEFAULT_FRAMES, batch_size: int = 256
) -> np.ndarray:
    """Unit learned vectors [V, D] for a list of raw frame arrays [T_i, D] (uniformly sampled, padded)."""
    if any(len(v) == 0 for v in per_video):
        raise ValueError("a video without frames has no learned vector")
    head.eval()
    device = next(head.parameters()).device
    out = []
    for i in range(0, len(per_video), batch_size):
        chunk = [sample_frames(v, n_frames) for v in per_video[i : i + batch_size]]
        frames, mask = pad_frames(chunk, chunk[0].shape[1])  # [B, T, D], [B, T]
        vec = head(frames.to(device), mask.float().to(device))
        out.append(vec.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, getattr(head, "width", 0)), np.float32)


def learned_vector(head: nn.Module, vectors, n_frames: int = DEFAULT_FRAMES) -> np.ndarray:
    """One video's unit learned vector [D] from its raw frame vectors [T, D]."""
    return learned_vectors(head, [vectors], n_frames)[0]


class LearnedHead:
    """A loaded head for the index writer: ``agg(vectors [T, D]) -> (learned_vec [D], head_id)``."""

    def __init__(self, path: str | Path, stamp: dict | None, device: str | torch.device = "cpu"):
        self.path = str(path)
        self.head, self.config = load_head(path, stamp, device)
        self.n_frames = int(self.config.get("n_frames", DEFAULT_FRAMES))
        self.id = head_id(path)

    def __call__(self, vectors) -> tuple[np.ndarray, str]:
        return learned_vector(self.head, vectors, self.n_frames), self.id

    def pool(self, per_video: Sequence) -> np.ndarray:
        """Batched: unit learned vectors [V, D] for many videos' raw frames."""
        return learned_vectors(self.head, per_video, self.n_frames)
