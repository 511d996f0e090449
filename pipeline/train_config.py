"""``vidseek train``'s configuration and its defaults (docs/methods.md, the learned temporal head).

Light on purpose (no torch, no store), like pipeline/index_config.py: the CLI builds the train command's options
from these defaults at start-up; pipeline/train_head.py trains from it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidseek.pipeline.index_config import IndexConfig

# CLIP4Clip's max_frames: operators/heads.py DEFAULT_FRAMES, which imports torch (tests/test_train_head.py
# checks that the two agree)
DEFAULT_FRAMES = 12


@dataclass
class TrainConfig:
    """One training run: data, head, optimiser, and how the run reports and resumes."""

    dataset: str  # captions: MSR-VTT JSON, CSV or JSONL
    out: str = "head.pt"
    store: str | None = None  # frame vectors from here (its model stamp picks the encoder)
    video_root: str | None = None  # decode + encode dataset videos the store lacks
    split: str | None = None  # MSR-VTT JSON split to train on
    head_type: str = "seqTransf"  # seqTransf | seqLSTM
    frames: int = DEFAULT_FRAMES
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-4
    weight_decay: float = 0.2
    warmup: float = 0.1  # fraction of all steps
    grad_clip: float = 1.0
    hard_negatives: bool = False  # batches of nearest-caption pairs (pipeline/train_head.py docstring)
    val_fraction: float = 0.1
    seed: int = 0
    model: str | None = None  # without a store: registry name (default tiny-random); with one: must match
    pretrained: str | None = None
    sampling: str = IndexConfig.sampling  # for videos decoded on the fly
    prefix: str = "vidseek"
    device: str = "auto"
    threads: int | None = None  # CPU threads for training (tiny heads run faster on 1; restored afterwards)
    resume: bool = False
    stop_after: int | None = None  # end this run after that many epochs (partial checkpoint kept)
    progress: bool = True
    verbose: bool = True
