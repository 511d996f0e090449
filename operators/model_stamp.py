"""A store's model stamp: what identifies an embedding space (no open_clip import: the writer and the
store need this, and importing open_clip costs seconds of CPU in every process that does).
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path, limit: int | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def weights_identity(pretrained: str) -> str:
    """What identifies the weights in a store's model stamp: the tag, a file's content hash, or none."""
    if pretrained in ("none", "", None):
        return "none"
    p = Path(pretrained)
    if p.exists():
        return f"sha256:{file_sha256(p)}"
    return f"tag:{pretrained}"


IDENTITY_KEYS = ("model", "weights", "embed_dim", "preprocess")  # what makes two embedding spaces the same


def stamp_diff(a: dict, b: dict) -> dict[str, tuple]:
    """Fields on which two model stamps (``LoadedClip.stamp()``) disagree: {key: (a's, b's)}."""
    return {k: (a.get(k), b.get(k)) for k in IDENTITY_KEYS if a.get(k) != b.get(k)}


def describe_stamp_diff(a: dict, b: dict, a_has: str, b_has: str) -> str | None:
    """``"key: <a_has> <a's>, <b_has> <b's>; …"`` for the identity keys two stamps disagree on; None if none."""
    diff = stamp_diff(a, b)
    return "; ".join(f"{k}: {a_has} {x!r}, {b_has} {y!r}" for k, (x, y) in diff.items()) if diff else None


def requested_identity(model: str, pretrained: str | None) -> dict:
    """The part of a model stamp known from the request alone (no model built, no open_clip import):
    ``model``, ``weights`` and ``pretrained``. ``embed_dim`` and ``preprocess`` need the model
    (``LoadedClip.stamp()``); the index job takes them from the store and the CLIP actor checks them."""
    from vidseek.operators.models import resolve_pretrained

    resolved = resolve_pretrained(model, pretrained)
    return {"model": model, "weights": weights_identity(resolved), "pretrained": resolved}


class RandomWeightsWarning(UserWarning):
    """A store's (or a job's) model has random weights: what it finds is random."""


REAL_MODEL_HINT = (
    "for real search, index into a new --store with an open_clip architecture and its trained weights, e.g. "
    "--model ViT-B-32 --pretrained /path/to/open_clip_model.safetensors (or --pretrained laion2b_s34b_b79k "
    "where the model hub is reachable)"
)


def random_weights_warning(stamp: dict | None) -> str | None:
    """One line saying that ``stamp``'s model has random weights (``tiny-random``, the default model, or any
    architecture with pretrained ``none``), so its results are random; None for trained weights."""
    if not stamp or stamp.get("weights") != "none":
        return None
    return f"model {stamp.get('model')} has random weights: search results are random; {REAL_MODEL_HINT}"
