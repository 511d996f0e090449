"""``run_index``: the streaming Ray Data job decode → CLIP → aggregate/write, resumable and incremental.

    from_items(videos to do) ─map_batches(decode, CPU tasks, one per core)─▶ frame rows + VideoEnd records
        ─map_batches(encode, GPU actor per GPU | one CPU actor)─▶ frame rows with embeddings + records
        ─pool + write: one writer actor (Milvus server) | the driver itself (Milvus Lite)─▶ one row per video
    the driver iterates those rows: progress bar, failure budget, summary.

The job in parts, each a function of typed values:

    job_inputs     the request, checked (sampling, decode limit, decoder, device, model name, head) and the
                   sources discovered, before any store opens
    job_stamp,     what the store decides: the model stamp written under, the head, the merge threshold (these
    store_terms    may create the store's collections)
    plan_job       the planner: which videos to index, skip, replace, prune (store reads only) -> ``IndexPlan``
    apply_plan     deletes what the plan names stale; a head's vectors for videos already indexed
    stage_specs    the stage specs (pipeline/specs.py) for the videos to do: pure, no Ray
    execute        the executor: the Ray Data stream built from the specs, counted into the ``IndexSummary``

Rows: operators/rows.py (``VideoSource`` in, ``VideoResult`` out). Pooling (meanP, and a learned head if given)
is operators/video_vectors.py, applied by the writer once a video's frames are all in. What a test injects
(fault hooks, placement records) comes in as ``JobHooks``: the job reads no environment variable for them.

Why Ray Data: streaming execution with backpressure between stages (decoding never waits for the whole
library, memory stays bounded), task and actor pools that scale to a cluster, and retries — with our own writer
stage because Milvus Lite allows one process per store.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterator

from vidseek.operators.decode import check_backend
from vidseek.operators.isolated_decode import DecodeLimit, DecoderArgs
from vidseek.operators.model_stamp import random_weights_warning, requested_identity
from vidseek.operators.remote_source import StorageOptions, is_url
from vidseek.operators.rows import VideoResult, VideoSource, results_from_batch, source_items
from vidseek.operators.sampling import SamplingPlan
from vidseek.operators.video_vectors import VideoVectors
from vidseek.pipeline.index_config import IndexConfig
from vidseek.pipeline.job_ray import JobError, JobRay, timed
from vidseek.pipeline.quiet_ray import filtered_stderr
from vidseek.pipeline.sources import discover
from vidseek.pipeline.specs import DecodeSpec, EncodeSpec, JobHooks, JobSpecs, WriteSpec
from vidseek.store.thin import merge_threshold_for_job
from vidseek.store.video_store import StoreError, VideoStore, is_server_uri

log = logging.getLogger(__name__)


class JobObserver:
    """Sees the job's progress and does nothing; benchmarks pass one that times it (bench/timings.py)."""

    def streaming_started(self) -> None:
        pass

    def video_finished(self, summary: "IndexSummary", total: int) -> None:
        pass


@dataclass
class IndexSummary:
    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    pruned: int = 0
    replaced: int = 0
    incomplete: int = 0  # neither indexed nor failed (writer lost them); re-run to finish
    reaggregated: int = 0  # already-indexed videos given learned vectors from their stored frames
    frames: int = 0
    video_seconds: float = 0.0
    wall_s: float = 0.0
    stopped_early: bool = False
    merge_similar: float | None = None  # the threshold frame rows were merged at (None: one row per frame)
    model_warning: str | None = None  # the job's model has random weights (tiny-random): searches find nothing
    errors: list[dict] = field(default_factory=list)
    # seconds per part of the job (the fixed costs, bench/fixed_costs.py): model (driver's load, for the
    # identity stamp), plan (store open and resume planning), ray_start, first_video (streaming start to the
    # first finished video: actor start-up, worker imports, pipeline fill), stream (all of it), ray_stop
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0

    def add(self, result: VideoResult) -> None:
        """Count one finished video."""
        if result.ok:
            self.indexed += 1
            self.frames += result.n_frames
            self.video_seconds += result.duration
        else:
            self.failed += 1
            self.errors.append({"path": result.path, "stage": result.stage, "reason": result.error})

    def as_dict(self) -> dict:
        d = asdict(self)
        d["frames_per_s"] = round(self.frames_per_s, 2)
        d["video_seconds_per_s"] = round(self.video_seconds / self.wall_s, 2) if self.wall_s else 0.0
        d["top_errors"] = top_reasons(self.errors)
        return d

    def render(self) -> str:
        lines = [
            f"indexed {self.indexed}, skipped {self.skipped} (already done), failed {self.failed}, "
            f"pruned {self.pruned}, replaced {self.replaced}"
            + (f", learned vectors added to {self.reaggregated} indexed videos" if self.reaggregated else ""),
            f"{self.frames} frames from {self.video_seconds:.1f} s of video in {self.wall_s:.1f} s "
            f"({self.frames_per_s:.1f} frames/s, "
            f"{(self.video_seconds / self.wall_s) if self.wall_s else 0:.1f} s of video per s)",
        ]
        if self.merge_similar is not None:
            lines.append(
                f"near-duplicate frames merged into one row at cosine ≥ {self.merge_similar:g} (thinned store)"
            )
        if self.incomplete:
            lines.append(f"{self.incomplete} videos incomplete (a worker was lost): re-run the same command")
        if self.stopped_early:
            lines.append("stopped early: the failure budget (--max-failures) was exceeded")
        for reason, n in top_reasons(self.errors):
            lines.append(f"  {n}× {reason}")
        if self.model_warning:  # "note:", not "warning:": a successful job prints nothing that looks like an error
            lines.append(f"note: {self.model_warning}")
        return "\n".join(lines)


def _store_error_in(error: BaseException) -> StoreError | None:
    """The store error behind a stage failure, through Ray's wrappers and exception chains.

    A ``RayTaskError`` is unwrapped to its ``cause`` first: Ray makes it a subclass of the cause's class, so
    it passes ``isinstance(e, StoreError)``, but its text is the whole remote traceback."""
    from ray.exceptions import RayTaskError

    seen: set[int] = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, RayTaskError):
            stack.append(e.cause)
        elif isinstance(e, StoreError):
            return e
        else:
            stack += [getattr(e, "cause", None), e.__cause__, e.__context__]
    return None


def top_reasons(errors: list[dict], n: int = 5) -> list[tuple[str, int]]:
    def reason(e: dict) -> str:
        msg = e["reason"]
        path = e["path"]
        msg = msg.replace(f"{path}: ", "", 1)
        return f"[{e['stage']}] {msg.split(' (')[0]}"

    return Counter(reason(e) for e in errors).most_common(n)


# -- the request, checked -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobInputs:
    """What the job was asked, checked before the store opens (no store, no Ray)."""

    sampling: str  # the sampling plan, normalised
    limit: DecodeLimit
    sources: list[VideoSource]
    wanted: dict  # the requested model's identity (operators/model_stamp.py requested_identity)
    head_path: str | None
    storage: StorageOptions = field(default_factory=StorageOptions)  # for URL sources (values hidden from repr)


def job_inputs(cfg: IndexConfig) -> JobInputs:
    plan_spec = SamplingPlan.parse(cfg.sampling)
    limit = DecodeLimit(cfg.decode_timeout_s, cfg.decode_timeout_per_s)  # validated on the driver, before Ray starts
    check_backend(cfg.decoder, plan_spec)
    if not cfg.address and cfg.device.startswith("cuda") and not cfg.num_gpus:
        from vidseek.operators.device import pick_device

        pick_device(cfg.device)  # local Ray: this machine's GPUs are the job's; none -> a clear error now
    storage = StorageOptions.parse(cfg.storage_options)  # bad JSON: one line, before the store opens
    sources = discover(cfg.source, storage)
    if cfg.decoder == "decord" and any(is_url(s.path) for s in sources):
        raise ValueError("--decoder decord reads local files only: use --decoder auto or pyav for URL sources")
    wanted = requested_identity(cfg.model, cfg.pretrained)  # an unknown model fails here, before the store
    return JobInputs(str(plan_spec), limit, sources, wanted, resolve_head(cfg.head), storage)


def resolve_head(path: str | None) -> str | None:
    """A head checkpoint's absolute path (it must exist); None/"" -> no learned vectors."""
    if not path:
        return None
    if not os.path.isfile(path):
        raise ValueError(f"head checkpoint {path} not found (train one with `vidseek train`)")
    return os.path.abspath(path)


# -- what the store decides -----------------------------------------------------------------------------


def job_stamp(cfg: IndexConfig, store: VideoStore, wanted: dict, phases: dict[str, float]) -> tuple[dict, bool]:
    """The model stamp this job writes under, and whether the CLIP actor must still confirm it.

    A store that already holds ``wanted``'s model (same name and weights identity) gives its own stamp: the
    driver then builds no model (importing open_clip and building one costs ~7 CPU-s, docs/architecture.md
    "A job's fixed costs"), and the CLIP actor, which builds the model anyway, checks ``embed_dim`` and
    ``preprocess`` against the store's before it encodes a frame (pipeline/stages/encode.py). A new store,
    or a store of another model, takes the stamp of the model built here; ``ensure_model`` names any
    mismatch. Built before Ray starts, never beside it: Ray starts its processes with a Python
    ``preexec_fn``, which is unsafe while another thread runs (a Ray dashboard was seen to abort).
    """
    stored = store.model_stamp()
    if stored is not None and all(stored.get(k) == wanted[k] for k in ("model", "weights")):
        return {**stored, "pretrained": wanted["pretrained"]}, True

    with timed(phases, "model"):
        from vidseek.operators.encode import load_clip

        return load_clip(cfg.model, cfg.pretrained, device="cpu").stamp(), False  # identity and preprocess only


@dataclass(frozen=True)
class StoreTerms:
    """The store's terms for the job: the stamp it writes under (and whether the CLIP actor confirms it), the
    learned head it applies (a ``LearnedHead``, or None), the threshold frame rows are merged at."""

    stamp: dict
    confirm_in_actor: bool
    head: object | None
    merge_similar: float | None


def store_terms(cfg: IndexConfig, store: VideoStore, inputs: JobInputs, stamp: dict, confirm: bool) -> StoreTerms:
    """Checks the job against the store, which records the stamp (and a new store's thinning) if it has none."""
    head = None
    if inputs.head_path:
        from vidseek.operators.heads import LearnedHead

        head = LearnedHead(inputs.head_path, stamp)  # a head of another model fails here
    store.ensure_model(stamp)
    if head is not None and not store.has_learned:
        raise JobError(str(store.no_learned_error()))  # refused here, before any video is decoded
    merge = merge_threshold_for_job(store, cfg.merge_similar)  # the store's, or a new store's first
    return StoreTerms(stamp, confirm, head, merge)


# -- the planner ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexPlan:
    todo: list[VideoSource]
    skipped: int
    stale: list[str]  # video ids to delete before writing
    pruned: list[str]
    replaced: int


def plan_job(store: VideoStore, sources: list[VideoSource], prune: bool, retry_failed: bool) -> IndexPlan:
    """Which videos to (re)index and which rows to delete, from what the store already holds (reads only)."""
    existing = store.video_records(fields=["video_id", "path", "status"])
    by_id = {r["video_id"]: r for r in existing}
    source_ids = {s.video_id for s in sources}
    source_paths = {s.path for s in sources}

    def finished(vid: str) -> bool:
        r = by_id.get(vid)
        return r is not None and (r["status"] == "ok" or (r["status"] == "failed" and not retry_failed))

    todo = [s for s in sources if not finished(s.video_id)]
    replaced_ids = [r["video_id"] for r in existing if r["path"] in source_paths and r["video_id"] not in source_ids]
    pruned = [r["video_id"] for r in existing if prune and r["path"] not in source_paths]
    stale = replaced_ids + pruned + [s.video_id for s in todo]  # todo: drop partial rows of a killed run
    return IndexPlan(todo, len(sources) - len(todo), stale, pruned, len(replaced_ids))


def apply_plan(store: VideoStore, plan: IndexPlan, head, sources: list[VideoSource]) -> int:
    """Deletes the plan's stale rows; with a head, gives the videos indexed before it learned vectors from
    their stored frames (no decode or encode). Returns how many videos got them."""
    if plan.stale:
        store.delete_videos(plan.stale)
    if head is None:
        return 0
    todo_ids = {v.video_id for v in plan.todo}
    skipped_ids = [v.video_id for v in sources if v.video_id not in todo_ids]
    from vidseek.pipeline.learned import apply_head_to_store

    return apply_head_to_store(store, head, skipped_ids, only_missing=True) if skipped_ids else 0


def stage_specs(
    cfg: IndexConfig, inputs: JobInputs, terms: StoreTerms, n_todo: int, hooks: JobHooks | None = None
) -> JobSpecs:
    """The stages' specs for a job of ``n_todo`` videos: values only, built before Ray starts."""
    hooks = hooks or JobHooks()
    where = hooks.placement_dir
    options = {"backend": cfg.decoder, "skip_loop_filter": cfg.skip_loop_filter}
    if inputs.storage:
        options["storage_options"] = inputs.storage
    if any(is_url(s.path) for s in inputs.sources):
        options["verify_objects"] = True  # an object changed after the listing is not stored under its old id
    decoder = DecoderArgs(terms.stamp["preprocess"], inputs.sampling, cfg.chunk_frames, options)
    encode = EncodeSpec(
        model=cfg.model,
        pretrained=cfg.pretrained,
        device=cfg.device,
        precision=cfg.precision,
        batch_size=cfg.encode_batch,
        expected_stamp=terms.stamp if terms.confirm_in_actor else None,
        store_uri=cfg.store,
        placement_dir=where,
    )
    write = WriteSpec(
        uri=cfg.store,
        stamp=terms.stamp,
        sampling=inputs.sampling,
        prefix=cfg.prefix,
        expected=n_todo,
        video_vectors=VideoVectors(inputs.head_path, terms.stamp),
        hooks=hooks.writer,
        retry_s=cfg.store_retry_s,
        merge_similar=terms.merge_similar,
        placement_dir=where,
    )
    return JobSpecs(
        DecodeSpec(decoder, inputs.limit, where),
        encode,
        write,
        decode_pool=cfg.decode_pool,
        progress=cfg.progress,
        max_failures=cfg.max_failures,
    )


# -- the job --------------------------------------------------------------------------------------------


def _plan_in_store(
    cfg: IndexConfig, store: VideoStore, inputs: JobInputs, phases: dict[str, float], t_plan: float
) -> tuple[dict, StoreTerms, IndexPlan, int]:
    """The store's part of a job: the stamp, the store's terms, the plan, and the plan applied (stale rows
    deleted, heads re-applied: ``reaggregated``). ``phases["plan"]``: its time since ``t_plan`` (the store's
    open), a model build for the stamp left out."""
    try:
        t_stamp = time.perf_counter()
        stamp, confirm_in_actor = job_stamp(cfg, store, inputs.wanted, phases)
        t_plan += time.perf_counter() - t_stamp  # the plan's time is the store's alone
        terms = store_terms(cfg, store, inputs, stamp, confirm_in_actor)
        plan = plan_job(store, inputs.sources, cfg.prune, cfg.retry_failed)
        return stamp, terms, plan, apply_plan(store, plan, terms.head, inputs.sources)
    finally:  # the store's part: its open, checks and resume planning
        phases["plan"] = time.perf_counter() - t_plan


def run_index(
    cfg: IndexConfig,
    store: VideoStore | None = None,
    observer: JobObserver | None = None,
    hooks: JobHooks | None = None,
) -> IndexSummary:
    """Index ``cfg.source`` into ``cfg.store``; see the module docstring for the stages.

    ``store``: an open store owned by the caller (e.g. the search service, which holds Milvus Lite's lock);
    the job then writes through it from this process, and leaves it open. A Milvus Lite store the job
    opens itself is written from this process too (one process may hold it; the driver already does, for
    planning); a Milvus server is written by a writer actor, anywhere in the cluster.
    ``observer``: told when streaming starts and each video finishes (benchmarks time the job with it).
    ``hooks``: what a test injects (``JobHooks``: fault hooks, a placement folder); None: nothing.
    """
    t0 = time.perf_counter()
    inputs = job_inputs(cfg)
    phases: dict[str, float] = {}
    own = store is None
    # Milvus Lite is a directory on this node that one process may hold: the driver writes it itself,
    # through the store it plans with (no writer actor, no second open). A server takes a writer actor.
    write_here = not own or not is_server_uri(cfg.store)
    job_ray = JobRay(cfg, phases)
    t_plan = time.perf_counter()
    store = VideoStore(cfg.store, cfg.prefix, retry_s=cfg.store_retry_s, frame_index=cfg.frame_index) if own else store
    try:
        stamp, terms, plan, reaggregated = _plan_in_store(cfg, store, inputs, phases, t_plan)
        summary = IndexSummary(
            skipped=plan.skipped,
            pruned=len(plan.pruned),
            replaced=plan.replaced,
            reaggregated=reaggregated,
            phases=phases,
            merge_similar=terms.merge_similar,
            model_warning=random_weights_warning(stamp),
        )
        if plan.todo:
            specs = stage_specs(cfg, inputs, terms, len(plan.todo), hooks)
            job_ray.start()
            with filtered_stderr():  # Ray's benign C++ error lines off the terminal (pipeline/quiet_ray.py)
                execute(specs, plan.todo, summary, store if write_here else None, observer or JobObserver())
    finally:
        job_ray.stop()
        if own:
            store.close()
    summary.wall_s = time.perf_counter() - t0
    return summary


# -- the executor ---------------------------------------------------------------------------------------


def execute(
    specs: JobSpecs,
    todo: list[VideoSource],
    summary: IndexSummary,
    driver_store: VideoStore | None,
    observer: JobObserver,
) -> None:
    """Runs the stages over ``todo`` on the Ray this process has joined, counting each finished video into
    ``summary``. ``driver_store``: the writer runs here, through this store (else: a writer actor)."""
    from tqdm import tqdm

    _quiet_ray_data()
    results = _stream(specs, todo, driver_store)
    bar = tqdm(total=len(todo), unit="video", disable=not specs.progress, dynamic_ncols=True)
    try:
        _count(results, specs.max_failures, summary, observer, bar, len(todo))
    except Exception as e:  # noqa: BLE001 — Ray wraps a stage's error; only a store error is explained here
        cause = _store_error_in(e)
        if cause is None:
            raise
        bar.close()
        # args[0]: the store's own line (Ray Data appends its retry advice to the text of a stage's error)
        raise JobError(str(cause.args[0]) if cause.args else str(cause)) from e
    bar.close()
    # A writer restarted after a crash loses the videos it was assembling: they are not reported here,
    # have no video row, and the next run re-indexes them.
    summary.incomplete = len(todo) - summary.indexed - summary.failed if not summary.stopped_early else 0


def _quiet_ray_data() -> None:
    import ray

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # our own bar counts videos, not blocks
    ctx.print_on_execution_start = False
    ctx.raise_original_map_exception = True  # a stage's own error (e.g. the store's), not Ray's wrapper of it
    if not log.isEnabledFor(logging.INFO):
        # a stage's error reaches the driver as an exception, which the caller reports; Ray Data's own
        # log line of it (with the remote traceback) would print it twice
        logging.getLogger("ray.data").setLevel(logging.CRITICAL)


def _stream(specs: JobSpecs, todo: list[VideoSource], driver_store: VideoStore | None) -> Iterator[VideoResult]:
    """The job's dataset, from the specs: decode tasks, CLIP actors, and the writer (an actor, or this process)."""
    import ray

    from vidseek.pipeline.resources import cluster_resources, map_batches_kwargs, plan_resources
    from vidseek.pipeline.stages.decode import decode_batch
    from vidseek.pipeline.stages.encode import EncodeStage
    from vidseek.pipeline.stages.write import WriteStage

    cpus, gpus, node_cpus = cluster_resources()
    res = plan_resources(cpus, gpus, specs.encode.batch_size, specs.decode_pool, node_cpus, specs.encode.device)
    log.info("stage resources: %s", res.as_dict())
    items = source_items(todo)
    ds = ray.data.from_items(items, override_num_blocks=min(len(items), 1000))
    ds = ds.map_batches(decode_batch, fn_kwargs={"spec": specs.decode}, **map_batches_kwargs(res.decode))
    encode = specs.encode.placed(res.encode)
    ds = ds.map_batches(EncodeStage, fn_constructor_kwargs={"spec": encode}, **map_batches_kwargs(res.encode))
    if driver_store is not None:
        return _write_in_driver(ds, WriteStage(specs.write, driver_store))
    ds = ds.map_batches(WriteStage, fn_constructor_kwargs={"spec": specs.write}, **map_batches_kwargs(res.write))
    return _results(ds)


def _write_in_driver(ds, writer) -> Iterator[VideoResult]:
    """Results of a writer running in this process over the encoded stream (shared-store mode)."""
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        yield from results_from_batch(writer(batch))


def _results(ds) -> Iterator[VideoResult]:
    """Results of the writer actor's stream."""
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        yield from results_from_batch(batch)


def _count(
    results: Iterator[VideoResult],
    max_failures: int | None,
    summary: IndexSummary,
    observer: JobObserver,
    bar,
    total: int,
) -> None:
    """Each finished video into ``summary`` and the bar, until the stream ends or the failure budget is spent."""
    t_start = time.perf_counter()
    observer.streaming_started()
    for result in results:
        bar.update(1)
        summary.add(result)
        elapsed = time.perf_counter() - t_start
        summary.phases.setdefault("first_video", elapsed)
        summary.phases["stream"] = elapsed
        observer.video_finished(summary, total)
        bar.set_postfix(frames_s=f"{summary.frames / elapsed:.1f}" if elapsed else "-", failed=summary.failed)
        if max_failures is not None and summary.failed > max_failures:
            summary.stopped_early = True
            return
