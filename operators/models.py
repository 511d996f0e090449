"""Model registry: one place that knows which CLIP models vidseek can build and how.

Names resolve in this order: a vidseek registry entry (``tiny-random``, ``testbed``, anything added with
``register_model``), then any open_clip model name (``ViT-B-32``…). ``pretrained`` is an open_clip tag, a
local checkpoint path, or ``none`` (random init, seeded: speed does not depend on weight values).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).parent / "model_configs"
HUB_HOST = ("huggingface.co", 443)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: an open_clip architecture plus its default weights."""

    name: str
    arch: str  # open_clip config name
    default_pretrained: str = "none"  # tag, checkpoint path, or "none"
    seed: int = 0  # init seed when pretrained is "none"
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}
# Built-in architectures, handed to open_clip on its first use: a process that only needs a model's name
# and weights (the index job's driver, docs/architecture.md "A job's fixed costs") never imports open_clip (~7 CPU-s).
_PENDING_CONFIGS: dict[str, Path] = {}


def open_clip_module():
    """open_clip, with the built-in architectures added to it."""
    import open_clip

    while _PENDING_CONFIGS:
        _arch, path = _PENDING_CONFIGS.popitem()
        open_clip.add_model_config(str(path))
    return open_clip


class ModelLoadError(RuntimeError):
    """A model or its weights cannot be loaded; the message says what to do."""


def register_model(entry: ModelEntry, config: dict | str | Path | None = None) -> None:
    """Register ``entry``; ``config`` (dict or JSON path) adds its open_clip architecture when new."""
    open_clip = open_clip_module()
    if config is not None:
        if isinstance(config, dict):
            open_clip.factory._MODEL_CONFIGS[entry.arch] = config  # same effect as add_model_config(file)
        else:
            open_clip.add_model_config(str(config))
    if open_clip.get_model_config(entry.arch) is None:
        raise ModelLoadError(f"model {entry.name!r}: open_clip has no architecture {entry.arch!r}")
    _REGISTRY[entry.name] = entry


def list_models() -> list[str]:
    """vidseek's registered names first, then every open_clip architecture."""
    return sorted(_REGISTRY) + [m for m in open_clip_module().list_models() if m not in _REGISTRY]


def get_model_entry(name: str) -> ModelEntry:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if open_clip_module().get_model_config(name) is not None:
        return ModelEntry(name=name, arch=name, default_pretrained="none")
    raise ModelLoadError(f"unknown model {name!r}; choose one of `vidseek models` (e.g. tiny-random, ViT-B-32)")


def _hub_reachable(timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        socket.create_connection(HUB_HOST, timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_pretrained(name: str, pretrained: str | None) -> str:
    """The weights to load: explicit value, else the registry default (open_clip's own names: none)."""
    if pretrained is not None:
        return pretrained
    return _REGISTRY[name].default_pretrained if name in _REGISTRY else get_model_entry(name).default_pretrained


def check_pretrained_available(arch: str, pretrained: str) -> None:
    """Fail within seconds, with what to do, when a tag's weights cannot be fetched or found."""
    if pretrained == "none" or Path(pretrained).exists():
        return
    if pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")) or os.sep in pretrained:
        raise ModelLoadError(f"checkpoint file {pretrained!r} does not exist")
    tags = open_clip_module().list_pretrained_tags_by_model(arch)
    if pretrained not in tags:
        raise ModelLoadError(
            f"model {arch!r} has no pretrained tag {pretrained!r}; known tags: {tags or 'none'}; "
            "or pass a local checkpoint path, or 'none' for random weights"
        )
    if not _hub_reachable():
        # Let a cached copy load, but never wait on hub retries (~46 s). huggingface_hub reads the
        # variable at import time, so set its constant too.
        os.environ["HF_HUB_OFFLINE"] = "1"
        try:
            import huggingface_hub.constants as hf_constants

            hf_constants.HF_HUB_OFFLINE = True
        except ImportError:
            pass


def pretrained_failure_message(arch: str, pretrained: str, err: BaseException) -> str:
    return (
        f"could not load pretrained weights {pretrained!r} for {arch!r} ({type(err).__name__}: {err}). "
        "The model hub may be unreachable: download the checkpoint elsewhere and pass its path, e.g. "
        f"--model {arch} --pretrained /path/to/open_clip_model.safetensors"
    )


def _register_builtin(entry: ModelEntry, config: Path) -> None:
    _REGISTRY[entry.name] = entry
    _PENDING_CONFIGS[entry.arch] = config


_register_builtin(
    ModelEntry(
        name="tiny-random",
        arch="tiny-random",
        default_pretrained="none",
        seed=0,
        description="tiny seeded random CLIP (64-d, 64 px) for tests and smoke runs; finds nothing",
    ),
    config=CONFIG_DIR / "tiny-random.json",
)

WEIGHTS_DIR = Path(__file__).parent / "weights"
# a seqTransf temporal head trained on the testbed world's order and content clips (apps/testbed/README.md)
TESTBED_HEAD = WEIGHTS_DIR / "testbed_head.pt"

_register_builtin(
    ModelEntry(
        name="testbed",
        arch="testbed",
        default_pretrained=str(WEIGHTS_DIR / "testbed.safetensors"),
        seed=0,
        description=(
            "tiny CLIP (64-d, 64 px) trained on the synthetic testbed world's frames; finds shapes by size, "
            "colour and kind. Rebuild: python -m vidseek.apps.testbed.train_clip "
            "--out operators/weights/testbed.safetensors --seed 0"
        ),
    ),
    config=CONFIG_DIR / "testbed.json",
)
