"""Indexing through the service's own store: POST /ingest, GET /ingest, GET /ingest/{job_id}."""

from typing import Annotated, Any

from fastapi import APIRouter, Path

from vidseek.apps.service.deps import ServiceDep
from vidseek.apps.service.errors import bad
from vidseek.apps.service.ingest import IngestError
from vidseek.apps.service.schemas import IngestBody

router = APIRouter()


@router.post("/ingest", status_code=202, summary="Index a source through the service's store (one job at a time)")
def ingest(body: IngestBody, svc: ServiceDep) -> dict[str, Any]:
    if "\x00" in body.source:
        bad(422, "bad source path")
    try:
        job = svc.ingest.start(body.source, body.sampling, body.prune, body.retry_failed, body.max_failures)
    except IngestError as e:
        bad(e.status, e.detail)
    return {**job.as_dict(), "status_url": f"/ingest/{job.id}"}


@router.get("/ingest", summary="Recent ingest jobs, newest first")
def ingest_jobs(svc: ServiceDep) -> list[dict[str, Any]]:
    return [j.as_dict() for j in reversed(list(svc.ingest.jobs.values()))]


@router.get("/ingest/{job_id}", summary="An ingest job's state, progress and summary")
def ingest_job(job_id: Annotated[str, Path(max_length=64)], svc: ServiceDep) -> dict[str, Any]:
    job = svc.ingest.get(job_id)
    if job is None:
        bad(404, "no ingest job with this id")
    return job.as_dict()
