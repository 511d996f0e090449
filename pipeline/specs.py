"""The index job's stage specs and hooks: typed values the planner builds and the stages are built from.

    DecodeSpec  the decode tasks: the ``VideoDecoder``'s arguments and the ``DecodeLimit`` (stages/decode.py)
    EncodeSpec  the CLIP actor: the ``ImageEncoder``'s arguments and the stamp it confirms (stages/encode.py)
    WriteSpec   the writer: its store, stamp, pooling step, thinning and fault hooks (stages/write.py)
    JobSpecs    the three, and what the executor itself needs (pool size, progress bar, failure budget)
    JobHooks    what a test injects into a job: the writer's fault hooks, the folder placement is recorded to

The specs travel through Ray as they are (dataclasses pickle): a stage receives its spec, never a flattened
tuple of its fields. Light on purpose (no Ray, no torch): the driver builds them before Ray starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Mapping

from vidseek.operators.isolated_decode import DecodeLimit, DecoderArgs
from vidseek.operators.video_vectors import VideoVectors
from vidseek.pipeline.faults import fault_hooks_from_env
from vidseek.pipeline.placement import PLACEMENT_DIR_ENV

if TYPE_CHECKING:
    from vidseek.pipeline.resources import StageResources
    from vidseek.pipeline.writer import WriterHooks


@dataclass(frozen=True)
class JobHooks:
    """Passed into ``run_index``; the job reads no environment variable for them.

    ``writer``: the store writer's hooks (``pipeline/faults.FaultInjector`` crashes or pauses it at a point).
    ``placement_dir``: each stage records where it ran to this folder (pipeline/placement.py)."""

    writer: WriterHooks | None = None
    placement_dir: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "JobHooks":
        """``VIDSEEK_FAULT`` and ``VIDSEEK_PLACEMENT_DIR``, for a process's entry point (the CLI's ``main``, a
        test's helper) to pass into the job it runs; this process is the driver the injector kills."""
        env = os.environ if environ is None else environ
        return cls(fault_hooks_from_env(os.getpid(), env), env.get(PLACEMENT_DIR_ENV) or None)


@dataclass(frozen=True)
class DecodeSpec:
    decoder: DecoderArgs
    limit: DecodeLimit = DecodeLimit()
    placement_dir: str | None = None


@dataclass(frozen=True)
class EncodeSpec:
    """``ImageEncoder``'s arguments, and ``expected_stamp``: the store's stamp that the model built in the actor
    must match (None: the driver built the model itself). ``batch_size`` None: the encoder's default, or, in a
    job, the resource plan's (``placed``)."""

    model: str = "tiny-random"
    pretrained: str | None = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None
    threads: int | None = None
    expected_stamp: dict | None = None
    store_uri: str = ""
    placement_dir: str | None = None

    def encoder_args(self) -> dict:
        args = {"model": self.model, "pretrained": self.pretrained, "device": self.device}
        args.update(precision=self.precision, threads=self.threads)
        return args if self.batch_size is None else {**args, "batch_size": self.batch_size}

    def placed(self, stage: StageResources) -> "EncodeSpec":
        """As the actor runs under ``stage``: its batch size, and the CPU unless the plan reserved a GPU (a
        CPU plan reserved none, so "auto" must not take one that Ray gave to nobody)."""
        return replace(self, device=self.device if stage.num_gpus else "cpu", batch_size=stage.batch_size)


@dataclass(frozen=True)
class WriteSpec:
    """``StoreWriter``'s arguments; ``uri`` is opened by a writer actor (a driver writes through its own store)."""

    uri: str
    stamp: dict
    sampling: str
    prefix: str = "vidseek"
    expected: int | None = None  # videos in the job
    video_vectors: VideoVectors = field(default_factory=VideoVectors)
    hooks: WriterHooks | None = None
    retry_s: float = 60.0
    merge_similar: float | None = None
    placement_dir: str | None = None


@dataclass(frozen=True)
class JobSpecs:
    decode: DecodeSpec
    encode: EncodeSpec
    write: WriteSpec
    decode_pool: int | None = None  # decode tasks at once (None: the resource plan's)
    progress: bool = True
    max_failures: int | None = None  # stop when more videos than this have failed
