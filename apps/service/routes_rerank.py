"""POST /rerank: CLIPRerank of a client's candidate list, with frame evidence from the store only."""

from fastapi import APIRouter

from vidseek.apps.service.deps import ServiceDep
from vidseek.apps.service.errors import bad
from vidseek.apps.service.schemas import Limits, RerankOut, rerank_body
from vidseek.apps.service.state import Service
from vidseek.store.video_store import StoreError, StoreUnavailableError


def candidate_out(rank: int, c) -> dict:
    return {
        "id": c.id,
        "rank": rank,
        "score": c.score,
        "path": c.path,
        "evidence": "fine_score" in c.extra,
        "initial_score": c.extra.get("initial_score", c.score),
        "fine_score": c.extra.get("fine_score"),
        "fused_score": c.extra.get("fused_score"),
    }


def run_rerank(svc: Service, body) -> dict:
    from vidseek.retrieval.rerank import rerank_run
    from vidseek.retrieval.runfiles import Candidate, RunQuery

    if not body.query.strip():
        bad(422, "empty query")
    if not body.candidates:
        return {"query": body.query, "candidates": [], "rescored": 0, "without_evidence": []}
    run = [RunQuery("q", body.query, [Candidate(c.id, c.score, c.path) for c in body.candidates])]
    try:
        (out,), report = rerank_run(run, svc.evidence(), body.alpha, body.depth)
    except StoreUnavailableError:
        raise
    except (ValueError, StoreError) as e:
        bad(422, str(e))
    return {
        "query": body.query,
        "candidates": [candidate_out(rank, c) for rank, c in enumerate(out.candidates, 1)],
        "rescored": report.rescored,
        "without_evidence": [w.split(":", 1)[1] for w in report.without_evidence],
    }


def router(limits: Limits) -> APIRouter:
    """POST /rerank, its body bounded by ``limits``."""
    RerankBody = rerank_body(limits)  # noqa: N806 — a model class
    r = APIRouter()

    @r.post(
        "/rerank", response_model=RerankOut, summary="CLIPRerank a candidate list with frame evidence from the store"
    )
    def rerank(body: RerankBody, svc: ServiceDep):
        return run_rerank(svc, body)

    return r
