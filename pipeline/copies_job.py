"""Copies in the library on Ray (docs/copies.md, "On Ray"): the probe and the align steps as Ray tasks.

The driver reads the library (ok videos, their paths and durations) and the whitening from the store, then
probes chunks of videos in tasks, pairs the candidates itself (a boolean per frame and a hit count per
candidate: small) and aligns chunks of pairs in tasks. Every task opens its own store connection and runs
the library functions of ``retrieval/copies.py`` unchanged, so the records are ``find_copies``'s, in the same
order (tests/test_copies_job.py). A Milvus Lite store admits one process, so it cannot be read from tasks:
``find_copies`` runs it in the caller's process (``runs_on_ray`` says which).
"""

from __future__ import annotations

from typing import Any

from vidseek.pipeline.index_config import IndexConfig
from vidseek.pipeline.job_ray import JobError, JobRay
from vidseek.retrieval.copies import (
    CopyParams,
    CopyRecord,
    Progress,
    Whitening,
    align_pairs,
    candidate_pairs,
    chunks,
    library,
    library_whitening,
    probe_videos,
)
from vidseek.store.video_store import VideoStore, is_server_uri

RAY_MIN_VIDEOS = 2000  # a server store with this many ok videos runs on Ray unless told otherwise
PROBE_CHUNK = 256  # videos per probe task
# pairs per align task. A task reads the frames of every video in its pairs at once: at most twice this many
# videos; the pairs come sorted, so a chunk's first videos repeat and it reads nearer this many
ALIGN_CHUNK = 512
RETRY = "retry: copies only read the store, so a re-run searches the whole library again"


def runs_on_ray(uri: str, choice: bool | None, ok_videos: int) -> bool:
    """``choice`` (--ray / --local) when given; else Ray for a server store of ≥ ``RAY_MIN_VIDEOS`` videos."""
    if choice is not None:
        return choice
    return is_server_uri(uri) and ok_videos >= RAY_MIN_VIDEOS


def _probe(uri: str, prefix: str, ids: list[str], params: CopyParams, known: list[str]) -> dict:
    with VideoStore(uri, prefix) as store:
        return probe_videos(store, ids, params, known)


def _align(
    uri: str,
    prefix: str,
    pairs: list[tuple[str, str]],
    generic: dict,
    videos: dict,
    params: CopyParams,
    whitening: Whitening,
) -> list[CopyRecord]:
    with VideoStore(uri, prefix) as store:
        return align_pairs(store, pairs, generic, videos, params, whitening)


def _gather(refs: list, step: str, progress: Progress | None, sizes: list[int]) -> list:
    """The tasks' results in submission order; ``progress(step, done, total)`` as each finishes."""
    import ray

    size_of = dict(zip(refs, sizes))
    pending, done = list(refs), 0
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done += size_of[ready[0]]
        if progress:
            progress(step, done, sum(sizes))
    try:
        return ray.get(refs)
    except ray.exceptions.RayError as e:
        raise JobError(f"a copies task failed ({step}): {e}; {RETRY}") from e


def start_ray(job_ray: JobRay, address: str | None) -> None:
    """``job_ray.start()``, its failure worded for copies (the index job's says a re-run resumes)."""
    try:
        job_ray.start()
    except JobError as e:
        where = f"join the Ray cluster at {address}" if address else "start a local Ray instance"
        raise JobError(
            f"copies could not {where} ({e.__cause__ or e}); check `ray status` or free memory/CPU, or {RETRY}"
        ) from e


def find_copies_on_ray(
    uri: str,
    params: CopyParams | None = None,
    *,
    prefix: str = "vidseek",
    address: str | None = None,
    num_cpus: int | None = None,
    probe_chunk: int = PROBE_CHUNK,
    align_chunk: int = ALIGN_CHUNK,
    progress: Progress | None = None,
) -> list[CopyRecord]:
    """``find_copies`` of a server store, its probe and align steps in Ray tasks (local Ray, or the cluster
    at ``address``; a Ray the caller started is used and left running). Best score first."""
    params = (params or CopyParams()).validate()
    if not is_server_uri(uri):
        raise ValueError(
            f"{uri}: a Milvus Lite store admits one process, so Ray tasks cannot read it; run without --ray "
            "(copies are found in this process) or use a Milvus server store"
        )
    with VideoStore(uri, prefix) as store:
        store.require_ready()
        videos = library(store)
        whitening = library_whitening(store, params)
    # JobRay reads address, num_cpus and num_gpus of the config: copies need no GPU
    job_ray = JobRay(IndexConfig(source="", store=uri, address=address, num_cpus=num_cpus, num_gpus=0), {})
    start_ray(job_ray, address)
    try:
        return _run_tasks(uri, prefix, videos, whitening, params, probe_chunk, align_chunk, progress)
    finally:
        job_ray.stop()


def _run_tasks(
    uri: str,
    prefix: str,
    videos: dict[str, dict],
    whitening: Whitening,
    params: CopyParams,
    probe_chunk: int,
    align_chunk: int,
    progress: Progress | None,
) -> list[CopyRecord]:
    import ray

    probe_task, align_task = ray.remote(num_cpus=1)(_probe), ray.remote(num_cpus=1)(_align)
    known: Any = ray.put(sorted(videos))
    parts = chunks(sorted(videos), probe_chunk)
    refs = [probe_task.remote(uri, prefix, part, params, known) for part in parts]
    probes = {k: v for r in _gather(refs, "probe", progress, [len(p) for p in parts]) for k, v in r.items()}
    pairs = candidate_pairs(probes, videos, params)
    generic = {v: p.generic for v, p in probes.items()}
    videos_ref, white_ref = ray.put(videos), ray.put(whitening)
    pair_parts = chunks(pairs, align_chunk)
    refs = [
        align_task.remote(
            uri, prefix, part, {v: generic[v] for p in part for v in p if v in generic}, videos_ref, params, white_ref
        )
        for part in pair_parts
    ]
    records = [r for rs in _gather(refs, "align", progress, [len(p) for p in pair_parts]) for r in rs]
    return sorted(records, key=lambda r: (-r.score, r.a, r.b))
