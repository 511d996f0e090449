"""Stage resources declared as data, validated once, mapped to Ray in one helper.

Ray's kwargs for actor pools changed twice (``compute=`` strategies, ``concurrency=`` deprecated in 2.60),
so ``map_batches_kwargs`` is the only place that knows them. Fractional CPUs matter: on a 2-core machine,
whole-CPU actors for decode + encode + writer cannot all be scheduled and the stages would not stream.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import ray
from ray.data import ActorPoolStrategy, TaskPoolStrategy

ENCODER_CPU_SHARE = 0.1  # CPU-only plans: the CLIP actor's placement reservation (it uses every core anyway)


@dataclass(frozen=True)
class StageResources:
    name: str
    num_cpus: float
    num_gpus: float = 0.0
    batch_size: int | None = None
    pool_size: int = 1  # actors (upper bound of an autoscaling pool), or concurrent tasks
    min_pool_size: int = 1
    tasks: bool = False  # stateless stage: Ray tasks, at most pool_size at once (no actor pool)

    def __post_init__(self):
        if self.num_cpus < 0 or self.num_gpus < 0:
            raise ValueError(f"stage {self.name}: resources must be ≥ 0")
        if not 1 <= self.min_pool_size <= self.pool_size:
            raise ValueError(f"stage {self.name}: need 1 ≤ min_pool_size ≤ pool_size")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"stage {self.name}: batch_size must be ≥ 1")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class JobResources:
    decode: StageResources
    encode: StageResources
    write: StageResources

    def as_dict(self) -> dict:
        return {s.name: s.as_dict() for s in (self.decode, self.encode, self.write)}


def plan_resources(
    cpus: float,
    gpus: float,
    encode_batch: int | None = None,
    decode_pool: int | None = None,
    node_cpus: list[float] | None = None,
    device: str = "auto",
) -> JobResources:
    """Default resources for a cluster with ``cpus`` CPUs and ``gpus`` GPUs (``node_cpus``: per node).

    ``device``: ``auto`` uses the GPUs when the cluster has any, ``cpu`` never reserves one, ``cuda``
    requires one (each CLIP actor then sees its own GPU as ``cuda``; Ray sets its CUDA_VISIBLE_DEVICES).

    GPU: one CLIP actor per GPU (large bf16 batches), every spare core decodes.
    Decoding runs as Ray tasks (see pipeline/stages/decode.py), the encoder and writer as actors.
    CPU only: one decoder per core and a small CPU reservation for the CLIP actor, which still runs torch
    on every core (see ImageEncoder). Reservations are for placement only (Ray does not cap CPU use): the
    operating system shares the cores between whichever stage has work, and Ray Data's backpressure idles
    the decoders when CLIP is the slow stage. A small model therefore gets every core decoding, a large one
    every core encoding.
    """
    if cpus < 1:
        raise ValueError("the Ray cluster reports no CPUs")
    if device.startswith("cuda"):
        if device != "cuda":
            raise ValueError(
                f"--device {device}: in an index job each CLIP actor is given its own GPU by Ray; "
                "use --device cuda (or auto)"
            )
        if gpus < 1:
            raise ValueError(
                "--device cuda: the Ray cluster has no GPUs (`ray status` lists them; start nodes "
                "with GPUs, or use --device cpu or auto)"
            )
    elif device != "auto":
        if device != "cpu":
            raise ValueError(f"unknown device {device!r}: use auto, cpu or cuda")
        gpus = 0.0  # CPU encoding on a GPU cluster: reserve no GPU
    # The writer mostly waits on the store; zero CPUs means it always fits beside the stages that saturate
    # a node (it is pinned to the driver's node for Milvus Lite, which may be full).
    writer = StageResources("write", num_cpus=0.0, batch_size=None)
    if gpus >= 1:
        n_gpu = int(gpus)
        encode = StageResources(
            "encode", num_cpus=1, num_gpus=1, batch_size=encode_batch or 512, pool_size=n_gpu, min_pool_size=n_gpu
        )
        spare = max(1.0, cpus - n_gpu - writer.num_cpus)
        n_dec = decode_pool or max(1, int(spare))
        decode = StageResources("decode", num_cpus=round(spare / n_dec, 2), batch_size=1, pool_size=n_dec, tasks=True)
    else:
        # encoder + decoder reservations sum to one core, so every node keeps room for one decode task per
        # whole core whichever node the encoder lands on.
        enc_cpus = ENCODER_CPU_SHARE
        encode = StageResources("encode", num_cpus=enc_cpus, batch_size=encode_batch or 64)
        whole = sum(int(c) for c in node_cpus) if node_cpus else int(cpus)
        n_dec = decode_pool or max(1, whole)
        decode = StageResources("decode", num_cpus=round(1.0 - enc_cpus, 2), batch_size=1, pool_size=n_dec, tasks=True)
    return JobResources(decode=decode, encode=encode, write=writer)


def map_batches_kwargs(stage: StageResources, **ray_remote_args) -> dict:
    """The one mapping of a stage to ``Dataset.map_batches`` keyword arguments (Ray 2.60)."""
    compute = (
        TaskPoolStrategy(size=stage.pool_size)
        if stage.tasks
        else ActorPoolStrategy(min_size=stage.min_pool_size, max_size=stage.pool_size)
    )
    kwargs = {
        "compute": compute,
        "num_cpus": stage.num_cpus,
        "batch_size": stage.batch_size,
    }
    if stage.num_gpus:
        kwargs["num_gpus"] = stage.num_gpus
    kwargs.update(ray_remote_args)
    return kwargs


def cluster_resources() -> tuple[float, float, list[float]]:
    """Total CPUs, total GPUs, and each alive node's CPUs."""
    res = ray.cluster_resources()
    per_node = [float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    return float(res.get("CPU", 0)), float(res.get("GPU", 0)), per_node
