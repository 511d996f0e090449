"""Read and write result lists of other systems: TREC runs, JSONL runs, query files and qrels.

Formats (whitespace = any run of spaces/tabs; blank lines are skipped):
- TREC run:   ``qid Q0 docid rank score tag`` — 6 fields, integer rank, finite float score. The second
  field is not checked (trec_eval ignores it; "Q0" and "0" both occur). Candidates come back sorted by the
  given rank, ties by score descending, then file order. The run tag is not kept: ``write_run`` takes one.
- JSONL run:  one object per line ``{"query_id", "query"?, "candidates": [{"id", "score", "path"?, ...}]}``;
  candidates keep the file order; other candidate keys are kept in ``Candidate.extra`` ("rank" is dropped on
  read and rewritten on write).
- A docid repeated within a query (fused/merged runs have them) keeps its best-ranked occurrence — the first
  in the order above (TREC: rank, score, file order; JSONL: list order) — and the rest are dropped with one
  logged warning per file naming the file, the queries, the docids and how many rows were dropped.
- Queries:    TSV ``qid<TAB>text`` (MS MARCO / TREC-style topic lists) or classic TREC SGML topics
  (``<top> <num> Number: 301 <title> text ...</top>``).
- Qrels:      ``qid 0 docid rel`` — 4 fields, integer relevance.

Every malformed line raises ValueError naming the file and the 1-based line number.
Note: trec_eval ranks by *score*, not by the rank column; ``write_run(..., score_from_rank=True)`` writes
scores n, n−1, …, 1 when the list order is what counts (e.g. after a rerank with mixed score scales).
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

FORMATS = ("trec", "jsonl")
log = logging.getLogger(__name__)


@dataclass
class Candidate:
    id: str
    score: float
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunQuery:
    query_id: str
    query: str | None
    candidates: list[Candidate]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8") as f:
        for no, line in enumerate(f, start=1):
            if line.strip():
                yield no, line.rstrip("\n")


def _is_token(v: str) -> bool:
    return bool(v) and v.split() == [v]


def _err(path: Path, no: int, msg: str) -> ValueError:
    return ValueError(f"{path}:{no}: {msg}")


def _float(path: Path, no: int, value: Any, what: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _err(path, no, f"{what} {value!r} is not a number") from None
    if isinstance(value, bool) or not math.isfinite(x):
        raise _err(path, no, f"{what} {value!r} is not a finite number")
    return x


def _drop_repeats(qid: str, cands: list[Candidate], dropped: dict[tuple[str, str], int]) -> list[Candidate]:
    """Keep each id's first (best-ranked) occurrence; count the others in ``dropped[(qid, id)]``."""
    kept, out = set(), []
    for c in cands:
        if c.id in kept:
            dropped[(qid, c.id)] = dropped.get((qid, c.id), 0) + 1
        else:
            kept.add(c.id)
            out.append(c)
    return out


def _warn_repeats(path: Path, dropped: Mapping[tuple[str, str], int], show: int = 5) -> None:
    if not dropped:
        return
    shown = [f"query {q!r} docid {d!r} ({n} dropped)" for (q, d), n in list(dropped.items())[:show]]
    more = f" and {len(dropped) - show} more docids" if len(dropped) > show else ""
    log.warning(
        "%s: %d repeated docid rows dropped, kept the best-ranked occurrence of each: %s%s",
        path,
        sum(dropped.values()),
        ", ".join(shown),
        more,
    )


def detect_format(path: str | Path) -> str:
    """ "jsonl" if the first non-blank line starts with "{", else "trec"."""
    for _, line in _lines(Path(path)):
        return "jsonl" if line.lstrip().startswith("{") else "trec"
    raise ValueError(f"{path}: empty run file")


def _read_trec(path: Path) -> list[RunQuery]:
    rows: dict[str, list[tuple[int, float, str]]] = {}
    for no, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise _err(path, no, f"expected 6 fields 'qid Q0 docid rank score tag', got {len(parts)}")
        qid, _, doc, rank, score, _ = parts
        try:
            r = int(rank)
        except ValueError:
            raise _err(path, no, f"rank {rank!r} is not an integer") from None
        s = _float(path, no, score, "score")
        rows.setdefault(qid, []).append((r, s, doc))
    out, dropped = [], {}
    for qid, items in rows.items():
        items.sort(key=lambda t: (t[0], -t[1]))  # given rank, ties: score descending, then file order (stable)
        out.append(RunQuery(qid, None, _drop_repeats(qid, [Candidate(d, s) for _, s, d in items], dropped)))
    _warn_repeats(path, dropped)
    return out


def _read_jsonl(path: Path) -> list[RunQuery]:
    out, seen, dropped = [], set(), {}
    for no, line in _lines(path):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise _err(path, no, f"invalid JSON: {e.msg}") from e
        if not isinstance(obj, dict) or "query_id" not in obj or not isinstance(obj.get("candidates"), list):
            raise _err(path, no, 'need an object with "query_id" and a "candidates" list')
        qid = str(obj["query_id"])
        if qid in seen:
            raise _err(path, no, f"query_id {qid!r} appears twice")
        seen.add(qid)
        cands = []
        for i, c in enumerate(obj["candidates"]):
            if not isinstance(c, dict) or "id" not in c or "score" not in c:
                raise _err(path, no, f'candidate {i} needs "id" and "score"')
            extra = {k: v for k, v in c.items() if k not in ("id", "score", "path", "rank")}
            path_ = c.get("path")
            cands.append(
                Candidate(
                    str(c["id"]),
                    _float(path, no, c["score"], f"candidate {i} score"),
                    None if path_ is None else str(path_),
                    extra,
                )
            )
        query = obj.get("query")
        out.append(RunQuery(qid, None if query is None else str(query), _drop_repeats(qid, cands, dropped)))
    _warn_repeats(path, dropped)
    return out


def read_run(path: str | Path) -> tuple[list[RunQuery], str]:
    """Queries (file order) and the detected format, "trec" or "jsonl"."""
    path = Path(path)
    fmt = detect_format(path)
    return (_read_trec(path) if fmt == "trec" else _read_jsonl(path)), fmt


def write_run(
    path: str | Path,
    queries: Sequence[RunQuery],
    fmt: str = "trec",
    tag: str = "vidseek",
    score_from_rank: bool = False,
) -> None:
    """Write queries in list order with ranks 1..n (TREC ``tag`` must be one token)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown run format {fmt!r}; choose from {FORMATS}")
    if fmt == "trec" and not _is_token(tag):
        raise ValueError(f"TREC run tag must be one non-empty token, got {tag!r}")
    lines = []
    for q in queries:
        n = len(q.candidates)
        scores = [float(n - r) if score_from_rank else float(c.score) for r, c in enumerate(q.candidates)]
        if fmt == "trec":
            for rank, (c, score) in enumerate(zip(q.candidates, scores), start=1):
                for name, v in (("query_id", q.query_id), ("candidate id", c.id)):
                    if not _is_token(v):
                        raise ValueError(f"{name} {v!r} cannot be written to a TREC run (whitespace/empty)")
                lines.append(f"{q.query_id} Q0 {c.id} {rank} {score!r} {tag}")
            continue
        cands = []
        for rank, (c, score) in enumerate(zip(q.candidates, scores), start=1):
            d: dict[str, Any] = {"id": c.id, "score": score}
            if c.path is not None:
                d["path"] = c.path
            d.update(c.extra)
            d["rank"] = rank
            cands.append(d)
        lines.append(json.dumps({"query_id": q.query_id, "query": q.query, "candidates": cands}, ensure_ascii=False))
    Path(path).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def run_to_dict(queries: Sequence[RunQuery]) -> dict[str, dict[str, float]]:
    """{qid: {docid: score}} as ``metrics.trec_metrics`` and pytrec_eval take it."""
    return {q.query_id: {c.id: float(c.score) for c in q.candidates} for q in queries}


_TOP = re.compile(r"<top>(.*?)</top>", re.S | re.I)
_NUM = re.compile(r"<num>\s*(?:Number:)?\s*(\S+)", re.I)
_TITLE = re.compile(r"<title>\s*(?:Topic:)?\s*(.*?)\s*(?=<desc>|<narr>|<num>|$)", re.S | re.I)


def read_queries(path: str | Path) -> dict[str, str]:
    """{qid: text} in file order from a TSV query file or TREC SGML topics."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if _TOP.search(text):
        out = {}
        for i, block in enumerate(_TOP.findall(text), start=1):
            num, title = _NUM.search(block), _TITLE.search(block)
            if not num or not title or not title.group(1):
                raise ValueError(f"{path}: topic {i} lacks <num> or <title>")
            out[num.group(1)] = " ".join(title.group(1).split())
        return out
    out = {}
    for no, line in _lines(path):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise _err(path, no, "expected 'qid<TAB>text'")
        qid = parts[0].strip()
        if qid in out:
            raise _err(path, no, f"query id {qid!r} appears twice")
        out[qid] = parts[1].strip()
    return out


def write_queries(path: str | Path, queries: Mapping[str, str]) -> None:
    """Write a TSV query file ``qid<TAB>text``."""
    rows = []
    for qid, text in queries.items():
        if any(ch in f"{qid}{text}" for ch in "\t\n\r"):
            raise ValueError(f"query {qid!r}: tabs/newlines cannot be written to a TSV query file")
        rows.append(f"{qid}\t{text}\n")
    Path(path).write_text("".join(rows), encoding="utf-8")


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """{qid: {docid: rel}} from ``qid 0 docid rel`` lines."""
    path = Path(path)
    out: dict[str, dict[str, int]] = {}
    for no, line in _lines(path):
        parts = line.split()
        if len(parts) != 4:
            raise _err(path, no, f"expected 4 fields 'qid 0 docid rel', got {len(parts)}")
        qid, _, doc, rel = parts
        try:
            out.setdefault(qid, {})[doc] = int(rel)
        except ValueError:
            raise _err(path, no, f"relevance {rel!r} is not an integer") from None
    return out


def write_qrels(path: str | Path, qrels: Mapping[str, Mapping[str, int]]) -> None:
    """Write ``qid 0 docid rel`` lines."""
    rows = [f"{q} 0 {d} {int(r)}\n" for q, docs in qrels.items() for d, r in docs.items()]
    Path(path).write_text("".join(rows), encoding="utf-8")
