"""Stage resources declared as data, validated once, mapped to Ray in one helper.

Ray's kwargs for actor pools changed twice (``compute=`` strategies, ``concurrency=`` deprecated in 2.60),
so ``map_batches_kwargs`` is the only place that knows them. Fractional CPUs matter: on a 2-core machine,
whole-CPU actors for decode + encode + writer cannot all be scheduled and the stages would not stream.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import ray
from ray.data import ActorPoolStrategy


@dataclass(frozen=True)
class StageResources:
    name: str
    num_cpus: float
    num_gpus: float = 0.0
    batch_size: int | None = None
    pool_size: int = 1  # actors (upper bound of an autoscaling pool)
    min_pool_size: int = 1

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


def plan_resources(cpus: float, gpus: float, encode_batch: int | None = None,
                   decode_pool: int | None = None) -> JobResources:
    """Default resources for a cluster with ``cpus`` CPUs and ``gpus`` GPUs.

    GPU: one CLIP actor per GPU (large bf16 batches), every spare core decodes.
    CPU only: one CLIP actor with half the cores; decoders share the rest (single-threaded each).
    """
    if cpus < 1:
        raise ValueError("the Ray cluster reports no CPUs")
    # The writer mostly waits on the store; zero CPUs means it always fits beside the stages that saturate
    # a node (it is pinned to the driver's node for Milvus Lite, which may be full).
    writer = StageResources("write", num_cpus=0.0, batch_size=None)
    if gpus >= 1:
        n_gpu = int(gpus)
        encode = StageResources("encode", num_cpus=1, num_gpus=1, batch_size=encode_batch or 512,
                                pool_size=n_gpu, min_pool_size=n_gpu)
        spare = max(1.0, cpus - n_gpu - writer.num_cpus)
        n_dec = decode_pool or max(1, int(spare))
        decode = StageResources("decode", num_cpus=round(spare / n_dec, 2), batch_size=1, pool_size=n_dec)
    else:
        # Half the cores as a reservation (the encoder still runs torch on every core, see ImageEncoder).
        # A smaller share packed a second decoder that could not be placed on two 1-CPU nodes, and Ray Data
        # failed the job when it cancelled that pending actor.
        enc_cpus = max(0.5, cpus / 2) if cpus > 1 else 0.45
        encode = StageResources("encode", num_cpus=enc_cpus, batch_size=encode_batch or 64)
        spare = max(0.5, cpus - enc_cpus - writer.num_cpus)
        n_dec = decode_pool or max(1, int(round(spare)))
        decode = StageResources("decode", num_cpus=round(spare / n_dec - 0.005, 2), batch_size=1, pool_size=n_dec)
    return JobResources(decode=decode, encode=encode, write=writer)


def map_batches_kwargs(stage: StageResources, **ray_remote_args) -> dict:
    """The one mapping of a stage to ``Dataset.map_batches`` keyword arguments (Ray 2.60)."""
    kwargs = {
        "compute": ActorPoolStrategy(min_size=stage.min_pool_size, max_size=stage.pool_size),
        "num_cpus": stage.num_cpus,
        "batch_size": stage.batch_size,
    }
    if stage.num_gpus:
        kwargs["num_gpus"] = stage.num_gpus
    kwargs.update(ray_remote_args)
    return kwargs


def cluster_resources() -> tuple[float, float]:
    res = ray.cluster_resources()
    return float(res.get("CPU", 0)), float(res.get("GPU", 0))
